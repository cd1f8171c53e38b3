"""What `load_spec` checks across a job or across jobs, beyond what a schema can say: the jobs
a job names exist, its placeholders are known, its executor, secrets and resources exist,
and no jobs wait on each other in a cycle."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from talon.model import Config, Job, ResourceLeaf, ResourceRequest
from talon.problems import Problem
from talon.resources import candidates
from talon.specfile import File, Loader, items, mapping, unknown
from talon.triggers import AfterTrigger, ExternalTrigger, Trigger
from talon.yamlfile import KeyPath


def check_names(ld: Loader, f: File, name: str, d: Mapping[str, Any], names: set[str]) -> None:
    """References to other jobs, checked against every defined name (valid or not)."""
    base: KeyPath = ("jobs", name)
    after = (
        (d.get("constraints") or {}).get("after")
        if isinstance(d.get("constraints"), dict)
        else None
    )
    for i, item in enumerate(after if isinstance(after, list) else []):
        target = item.get("job") if isinstance(item, dict) else item
        if isinstance(target, str) and target not in names:
            at = (*base, "constraints", "after", i)
            ld.problems.append(
                f.problem(at, f"after: {unknown('job', target, sorted(names))}", value=True)
            )
    raw = d.get("trigger")
    for i, trig in enumerate(raw if isinstance(raw, list) else [raw]):
        if (
            isinstance(trig, dict)
            and isinstance(trig.get("after"), str)
            and trig["after"] not in names
        ):
            at = (*base, "trigger", i) if isinstance(raw, list) else (*base, "trigger")
            ld.problems.append(
                f.problem(
                    at, f"trigger: {unknown('job', trig['after'], sorted(names))}", value=True
                )
            )


def check_placeholders(
    ld: Loader,
    f: File,
    base: KeyPath,
    d: Mapping[str, Any],
    triggers: list[Trigger],
    granted: int,
) -> None:
    """Placeholders every run of the job would fail on (see placeholders.unknown_in). Runs
    fired by a schedule or another job carry the job's own params only; a job triggered by
    hand alone may be given any (`talon trigger --param`)."""
    from talon.placeholders import unknown_in

    fired = any(not isinstance(t, ExternalTrigger) for t in triggers)
    params = mapping(d.get("params")) if fired else None
    templates: list[tuple[KeyPath, str]] = []
    command = d.get("command")
    if isinstance(command, str):
        templates.append(((*base, "command"), command))
    for i, arg in enumerate(items(command)):
        templates.append(((*base, "command", i), str(arg)))
    for key, value in mapping(d.get("env")).items():
        templates.append(((*base, "env", key), str(value)))
    if isinstance(d.get("host"), str):
        templates.append(((*base, "host"), d["host"]))
    for at, text in templates:
        for message in unknown_in(text, params, granted):
            ld.problems.append(f.problem(at, message, value=True))


def check_references(
    ld: Loader,
    config: Config,
    jobs: Mapping[str, Job],
    where: Mapping[str, File],
    leaves: list[ResourceLeaf],
) -> None:
    for name, job in jobs.items():
        f = where[name]
        base: KeyPath = ("jobs", name)
        for message in _executor_problems(name, job, config, leaves):
            ld.problems.append(f.problem((*base, "executor"), message, value=True))
        for secret in job.secrets:
            if secret not in config.secrets:
                ld.problems.append(
                    f.problem(
                        (*base, "secrets"), unknown("secret", secret, config.secrets), value=True
                    )
                )
        for i, req in enumerate(job.resources):
            wrong = _resource_problem(req, leaves)
            if wrong is not None:
                ld.problems.append(f.problem((*base, "resources", i), wrong, value=True))
    for cycle in cycles(jobs):
        first = jobs[cycle[0]]
        steps = []
        for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
            how = (
                "waits for"
                if any(d.job == b for d in jobs[a].constraints.after)
                else "is triggered by"
            )
            steps.append(f"{a} {how} {b}")
        ld.problems.append(
            Problem(
                first.source.path,
                first.source.line,
                first.source.col,
                f"dependency cycle: {'; '.join(steps)}",
            )
        )


def edges(job: Job) -> Iterator[str]:
    for dep in job.constraints.after:
        if dep.period == "same":
            yield dep.job
    for trig in job.triggers:
        if isinstance(trig, AfterTrigger):
            yield trig.job


def cycles(jobs: Mapping[str, Job]) -> list[list[str]]:
    """Each cycle once, found iteratively (a 10,000-deep chain must not hit the recursion limit).

    An edge a -> b means a waits for b. An `after` on the *previous* period is not an edge: it
    looks back in time, so it cannot deadlock.
    """
    graph = {name: sorted({d for d in edges(job) if d in jobs}) for name, job in jobs.items()}
    color: dict[str, int] = {}
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if color.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(graph[root]))]
        on_path = [root]
        color[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                on_path.pop()
                continue
            state = color.get(nxt, 0)
            if state == 1:
                cycles.append(on_path[on_path.index(nxt) :])
            elif state == 0:
                color[nxt] = 1
                on_path.append(nxt)
                stack.append((nxt, iter(graph[nxt])))
    return cycles


def _executor_problems(
    name: str, job: Job, config: Config, leaves: list[ResourceLeaf]
) -> list[str]:
    """What is wrong with the executor a job names, for the job."""
    if job.executor not in config.executors:
        if job.executor == config.default_executor:
            return []  # (reported once, where talon.yaml's defaults name it)
        return [unknown("executor", job.executor, config.executors)]
    executor = config.executors[job.executor]
    kind = executor.type
    out = []
    if (
        kind == "ssh"
        and not job.host
        and not executor.options.get("host")
        and not (
            job.resources
            and all("address" in c.attrs for c in candidates(leaves, job.resources[0]))
        )
    ):
        # (the ssh executor's own words when it refuses the run at its start)
        out.append(
            f"job '{name}' runs on ssh executor '{job.executor}' with no host: set "
            "`host:` or request a resource whose leaves have an `address`"
        )
    if job.call is not None and job.command is None and kind != "inprocess":
        out.append(
            f"job '{name}' gives `call:`, which only an inprocess executor runs; "
            f"executor '{job.executor}' is {kind}"
        )
    elif job.command is not None and job.call is None and kind == "inprocess":
        out.append(
            f"job '{name}' gives `command:`, which an inprocess executor cannot "
            f"run (it needs `call: module:function`); executor '{job.executor}'"
        )
    return out


def _resource_problem(req: ResourceRequest, leaves: list[ResourceLeaf]) -> str | None:
    """Why a request can never be met, if it cannot (else the run would wait as ready for ever,
    every resource free)."""
    matching = candidates(leaves, req)
    if not matching:
        where_txt = "".join(f", {k}={v}" for k, v in req.where.items())
        return f"resources: selector '{req.select}'{where_txt} matches no resource"
    if req.count > len(matching):
        return f"resources: '{req.select}' asks for {req.count} but only {len(matching)} match"
    big = [c for c in matching if c.capacity >= req.slots]
    if req.count > len(big):
        return (
            f"resources: '{req.select}' asks for {req.count} with {req.slots} "
            f"slot(s) each, but only {len(big)} of those matching have that capacity"
        )
    return None
