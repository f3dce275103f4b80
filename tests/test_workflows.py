"""Structural checks of the GitHub Actions workflows in .github/workflows/.

Each `*_violations` function parses a workflow (YAML 1.2 booleans, so `on:` stays a key) and
returns what breaks one delivery rule: triggers, least-privilege permissions, actions pinned to
commit SHAs with a version comment, Workload Identity Federation instead of keys, one preview per
stack commented on the pull request, fork pull requests skipped with a notice, prod deployed after
dev in the protected `prod` environment, one concurrency group per stack, mutation testing
weekly only with its report uploaded even when it fails. The tests run every check on the real
workflows (no violation) and on deliberately broken copies written to a tmp directory (the
expected violation), so each check is shown to fail. actionlint runs on both too.
"""

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW = WORKFLOWS / "preview.yml"
DEPLOY = WORKFLOWS / "deploy.yml"
TESTS = WORKFLOWS / "tests.yml"
MUTATION = WORKFLOWS / "mutation.yml"
MUTATION_REPORT = ".cache/mutation/report.md"
MUTATION_RUN = "scripts/mutation --workers 4"
STACKS = ("dev", "prod")

PULUMI_ACTION = "pulumi/actions"
GCP_AUTH_ACTION = "google-github-actions/auth"
QEMU_ACTION = "docker/setup-qemu-action"
BUILDX_ACTION = "docker/setup-buildx-action"
UPLOAD_ACTION = "actions/upload-artifact"
SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"
FROM_FORK = "github.event.pull_request.head.repo.full_name != github.repository"
PINNED = re.compile(r"(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})")
VERSION_COMMENT = re.compile(r"#\s*(?P<version>v\d+\.\d+\.\d+)\s*$")
REPO_VARIABLE = re.compile(r"\$\{\{\s*vars\.[A-Z][A-Z0-9_]*\s*\}\}")
MATRIX_REFERENCE = re.compile(r"\$\{\{\s*matrix\.(\w+)\s*\}\}")


class WorkflowLoader(yaml.SafeLoader):
    """YAML 1.2 booleans as GitHub reads them: `on`, `yes`, `off` stay strings."""


WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
WorkflowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

Workflow = dict[str, Any]
Job = dict[str, Any]


def load_workflow(path: Path) -> Workflow:
    # WorkflowLoader is a SafeLoader: no arbitrary objects are constructed.
    document = yaml.load(path.read_text(), Loader=WorkflowLoader)
    assert isinstance(document, dict), f"{path}: not a mapping"
    return document


def normalized(expression: object) -> str:
    """An `if:` condition without `${{ }}` and with single spaces."""
    text = str(expression).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    return " ".join(text.split())


def steps(job: Job) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def action_of(step: dict[str, Any]) -> str:
    """`owner/repo` of a step's `uses`, or "" for a `run` step."""
    return str(step.get("uses", "")).split("@")[0]


def needs_of(job: Job) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def substitute(value: Any, matrix: dict[str, str]) -> Any:
    """Replace `${{ matrix.X }}` in every string of `value`."""
    if isinstance(value, str):
        return MATRIX_REFERENCE.sub(lambda m: matrix.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {key: substitute(item, matrix) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, matrix) for item in value]
    return value


def job_instances(workflow: Workflow) -> Iterator[tuple[str, Job]]:
    """Every job, once per combination of its matrix, with `matrix.*` substituted."""
    for job_id, job in workflow.get("jobs", {}).items():
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        axes = {key: values for key, values in matrix.items() if isinstance(values, list)}
        if not axes:
            yield job_id, job
            continue
        for combination in product(*axes.values()):
            yield job_id, substitute(job, dict(zip(axes, map(str, combination), strict=True)))


def pulumi_runs(job: Job) -> list[dict[str, Any]]:
    """The `with:` of each pulumi/actions step that runs a command (not the install-only one)."""
    return [
        step.get("with") or {}
        for step in steps(job)
        if action_of(step) == PULUMI_ACTION and (step.get("with") or {}).get("command")
    ]


def stack_jobs(workflow: Workflow, command: str) -> Iterator[tuple[str, str, Job]]:
    """(job id, stack, job) for every job instance running `pulumi <command>` on a stack."""
    for job_id, job in job_instances(workflow):
        for run in pulumi_runs(job):
            if run.get("command") == command:
                yield job_id, str(run.get("stack-name")), job


def scalars(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from scalars(item)
    elif isinstance(value, list):
        for item in value:
            yield from scalars(item)
    else:
        yield str(value)


def trigger_violations(preview: Workflow, deploy: Workflow, tests: Workflow) -> list[str]:
    problems = []
    if set(preview.get("on") or {}) != {"pull_request"}:
        problems.append(f"preview must trigger on pull_request only, not {preview.get('on')}")
    push = (deploy.get("on") or {}).get("push") or {}
    if set(deploy.get("on") or {}) != {"push"} or push.get("branches") != ["main"]:
        problems.append(f"deploy must trigger on push to main only, not {deploy.get('on')}")
    if set(tests.get("on") or {}) != {"workflow_call"}:
        problems.append("tests must be a reusable workflow (on: workflow_call)")
    commands = [
        str(step.get("run", "")).strip() for _, job in job_instances(tests) for step in steps(job)
    ]
    if "scripts/test" not in commands:
        problems.append("the tests workflow must run the test command scripts/test")
    for name, workflow in (("preview", preview), ("deploy", deploy)):
        callers = [job for job in workflow.get("jobs", {}).values() if "uses" in job]
        if [job["uses"] for job in callers] != ["./.github/workflows/tests.yml"]:
            problems.append(f"{name} must call the tests workflow once")
    return problems


def permission_violations(workflow: Workflow) -> list[str]:
    """Read-only by default; id-token only where GCP auth runs, PR comments only on previews."""
    problems = []
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append(
            f"top-level permissions must be contents: read, not {workflow.get('permissions')}"
        )
    for job_id, job in workflow.get("jobs", {}).items():
        granted = job.get("permissions")
        if not isinstance(granted, dict):
            problems.append(
                f"job {job_id}: permissions must be an explicit mapping, not {granted!r}"
            )
            continue
        authenticates = any(action_of(step) == GCP_AUTH_ACTION for step in steps(job))
        comments = any(str(run.get("comment-on-pr")).lower() == "true" for run in pulumi_runs(job))
        allowed = {"contents": "read"}
        if authenticates:
            allowed["id-token"] = "write"
        if comments:
            allowed["pull-requests"] = "write"
        if authenticates and granted.get("id-token") != "write":
            problems.append(f"job {job_id}: authenticates to GCP without id-token: write")
        if comments and granted.get("pull-requests") != "write":
            problems.append(f"job {job_id}: comments on the PR without pull-requests: write")
        extra = {k: v for k, v in granted.items() if allowed.get(k) != v and v != "none"}
        if extra:
            problems.append(f"job {job_id}: permissions beyond its needs: {extra}")
    return problems


def pin_violations(path: Path) -> list[str]:
    """Every non-local `uses:` pinned to a 40-hex commit SHA with a `# vX.Y.Z` comment."""
    problems = []
    lines = path.read_text().splitlines()
    for key, value in uses_nodes(yaml.compose(path.read_text(), Loader=WorkflowLoader)):
        reference = str(value.value)
        if reference.startswith("./"):
            continue
        where = f"{path.name}:{key.start_mark.line + 1}"
        if not PINNED.fullmatch(reference):
            problems.append(f"{where}: {reference} is not pinned to a full commit SHA")
        elif not VERSION_COMMENT.search(lines[value.end_mark.line]):
            problems.append(f"{where}: {reference} has no `# vX.Y.Z` comment naming its release")
    return problems


def uses_nodes(node: yaml.Node) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    """(key, value) nodes of every `uses:` mapping entry, with their positions in the file."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "uses":
                yield key, value
            else:
                yield from uses_nodes(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from uses_nodes(item)


def pin_consistency_violations(paths: list[Path]) -> list[str]:
    """One SHA and one version per action across all workflows."""
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in paths:
        lines = path.read_text().splitlines()
        for _, value in uses_nodes(yaml.compose(path.read_text(), Loader=WorkflowLoader)):
            pinned = PINNED.fullmatch(str(value.value))
            comment = VERSION_COMMENT.search(lines[value.end_mark.line])
            if pinned and comment:
                pin = (pinned["sha"], comment["version"])
                seen.setdefault(pinned["action"], set()).add(pin)
    return [
        f"{action} pinned inconsistently: {sorted(pins)}"
        for action, pins in seen.items()
        if len(pins) > 1
    ]


def gcp_auth_violations(workflow: Workflow) -> list[str]:
    """Workload Identity Federation from repository variables; no keys, no secrets at all."""
    problems = []
    for job_id, job in workflow.get("jobs", {}).items():
        for step in steps(job):
            if action_of(step) != GCP_AUTH_ACTION:
                continue
            inputs = step.get("with") or {}
            for name in ("workload_identity_provider", "service_account"):
                if not REPO_VARIABLE.fullmatch(str(inputs.get(name, ""))):
                    problems.append(f"job {job_id}: auth input {name} must come from vars.*")
            if set(inputs) - {"workload_identity_provider", "service_account"}:
                problems.append(f"job {job_id}: unexpected auth inputs {sorted(inputs)}")
    for text in scalars(workflow):
        if "credentials_json" in text or "secrets." in text:
            problems.append(f"a key or secret is referenced ({text!r}); use WIF and vars only")
    return problems


def step_index(job: Job, action: str) -> int:
    return next((i for i, step in enumerate(steps(job)) if action_of(step) == action), -1)


def ready_to_run_pulumi(job_id: str, job: Job, command: str) -> list[str]:
    """GCP auth (and for `up`, QEMU and Buildx) set up before the pulumi command runs."""
    problems = []
    run_at = next(
        i
        for i, step in enumerate(steps(job))
        if action_of(step) == PULUMI_ACTION and (step.get("with") or {}).get("command") == command
    )
    required = [GCP_AUTH_ACTION] + ([QEMU_ACTION, BUILDX_ACTION] if command == "up" else [])
    for action in required:
        if not 0 <= step_index(job, action) < run_at:
            problems.append(f"job {job_id}: {action} must run before pulumi {command}")
    return problems


def preview_violations(preview: Workflow) -> list[str]:
    """One commented preview per stack, after the tests, only for pull requests of this repo."""
    problems = []
    previews = list(stack_jobs(preview, "preview"))
    stacks = sorted(stack for _, stack, _ in previews)
    if stacks != sorted(STACKS):
        problems.append(f"previews must cover each of {list(STACKS)} once, not {stacks}")
    for job_id, stack, job in previews:
        [run] = [r for r in pulumi_runs(job) if r.get("command") == "preview"]
        if str(run.get("comment-on-pr")).lower() != "true":
            problems.append(f"job {job_id} ({stack}): preview does not comment on the PR")
        if "tests" not in needs_of(job):
            problems.append(f"job {job_id} ({stack}): preview must need the tests job")
        if normalized(job.get("if", "")) != SAME_REPO:
            problems.append(
                f"job {job_id} ({stack}): preview must be skipped for forks ({SAME_REPO})"
            )
        problems += ready_to_run_pulumi(job_id, job, "preview")
    return problems


def fork_notice_violations(preview: Workflow) -> list[str]:
    """Fork pull requests get a job that says why no preview ran, and it has no token rights."""
    notices = [
        (job_id, job)
        for job_id, job in preview.get("jobs", {}).items()
        if normalized(job.get("if", "")) == FROM_FORK
    ]
    if not notices:
        return [f"no job runs for fork pull requests ({FROM_FORK}) to explain the skip"]
    problems = []
    for job_id, job in notices:
        text = " ".join(str(step.get("run", "")) for step in steps(job))
        if "::notice" not in text or "GITHUB_STEP_SUMMARY" not in text or "fork" not in text:
            problems.append(f"job {job_id}: must explain the fork skip as a notice and a summary")
        if job.get("permissions") != {}:
            problems.append(f"job {job_id}: needs no token permissions")
    return problems


def deploy_violations(deploy: Workflow) -> list[str]:
    """`up` dev after the tests, then prod after dev in the protected prod environment."""
    problems = []
    ups = {stack: (job_id, job) for job_id, stack, job in stack_jobs(deploy, "up")}
    if sorted(ups) != sorted(STACKS):
        return [f"deploy must run pulumi up for each of {list(STACKS)}, not {sorted(ups)}"]
    dev_id, dev = ups["dev"]
    prod_id, prod = ups["prod"]
    if "tests" not in needs_of(dev):
        problems.append(f"job {dev_id}: up dev must need the tests job")
    if dev_id not in needs_of(prod):
        problems.append(f"job {prod_id}: up prod must need {dev_id}")
    environment = prod.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else environment
    if name != "prod":
        problems.append(f"job {prod_id}: up prod must run in the protected prod environment")
    for job_id, job in (ups["dev"], ups["prod"]):
        problems += ready_to_run_pulumi(job_id, job, "up")
    return problems


def concurrency_violations(workflows: list[Workflow]) -> list[str]:
    """Each job on a stack is in a group of that stack alone; deployments never cancel."""
    problems = []
    stack_of_group: dict[str, str] = {}
    for workflow in workflows:
        for command in ("preview", "up"):
            for job_id, stack, job in stack_jobs(workflow, command):
                concurrency = job.get("concurrency")
                if not isinstance(concurrency, dict):
                    problems.append(f"job {job_id} ({stack}): needs a concurrency mapping")
                    continue
                group = str(concurrency.get("group"))
                if stack not in re.split(r"\W+", group):
                    problems.append(f"job {job_id} ({stack}): group {group!r} must name the stack")
                if stack_of_group.setdefault(group, stack) != stack:
                    problems.append(
                        f"group {group} is shared by {stack_of_group[group]} and {stack}"
                    )
                if command == "up" and group != f"pulumi-{stack}":
                    problems.append(f"job {job_id}: up must use the group pulumi-{stack}")
                if command == "up" and concurrency.get("cancel-in-progress") is not False:
                    problems.append(f"job {job_id}: up must set cancel-in-progress: false")
    return problems


def mutation_violations(mutation: Workflow, others: list[Workflow]) -> list[str]:
    """Weekly (or by hand) only, never per submission; the report uploaded even on failure."""
    problems = []
    triggers = mutation.get("on") or {}
    if set(triggers) - {"workflow_dispatch"} != {"schedule"}:
        problems.append(f"mutation must run on a schedule (and by hand) only, not {triggers}")
    for entry in triggers.get("schedule") or []:
        fields = str(entry.get("cron", "")).split()
        if len(fields) != 5 or not fields[4].isdigit() or fields[2:4] != ["*", "*"]:
            problems.append(f"mutation must run weekly (one day of the week), not {entry}")
    runs = [
        (job_id, job, at)
        for job_id, job in job_instances(mutation)
        for at, step in enumerate(steps(job))
        if str(step.get("run", "")).strip().startswith("scripts/mutation")
    ]
    if not runs:
        problems.append("the mutation workflow must run scripts/mutation")
    for job_id, job, at in runs:
        uploads = [step for step in steps(job)[at + 1 :] if action_of(step) == UPLOAD_ACTION]
        if not uploads or normalized(uploads[0].get("if", "")) != "always()":
            problems.append(f"job {job_id}: upload the report after scripts/mutation, if: always()")
        elif (uploads[0].get("with") or {}).get("path") != MUTATION_REPORT:
            problems.append(f"job {job_id}: the upload must be the report {MUTATION_REPORT}")
    for workflow in others:
        for job_id, job in job_instances(workflow):
            if any("scripts/mutation" in str(step.get("run", "")) for step in steps(job)):
                problems.append(f"job {job_id}: only the weekly workflow runs scripts/mutation")
    return problems


def violations(directory: Path) -> dict[str, list[str]]:
    """Every check on the workflows in `directory`, by check name."""
    preview, deploy, tests, mutation = (
        load_workflow(directory / f.name) for f in (PREVIEW, DEPLOY, TESTS, MUTATION)
    )
    every = (preview, deploy, tests, mutation)
    paths = sorted(directory.glob("*.yml"))
    return {
        "triggers": trigger_violations(preview, deploy, tests),
        "permissions": [p for w in every for p in permission_violations(w)],
        "pins": [p for path in paths for p in pin_violations(path)]
        + pin_consistency_violations(paths),
        "gcp-auth": [p for w in every for p in gcp_auth_violations(w)],
        "previews": preview_violations(preview),
        "fork-notice": fork_notice_violations(preview),
        "deploys": deploy_violations(deploy),
        "concurrency": concurrency_violations([preview, deploy]),
        "mutation": mutation_violations(mutation, [preview, deploy, tests]),
    }


def test_the_workflows_keep_every_delivery_rule() -> None:
    expected = {"deploy.yml", "preview.yml", "tests.yml", "mutation.yml"}
    assert expected <= {p.name for p in WORKFLOWS.glob("*.yml")}
    found = violations(WORKFLOWS)
    assert found == {check: [] for check in found}


def test_on_stays_a_key_and_the_matrix_expands_per_stack() -> None:
    # Sanity of the helpers the checks rely on, on the real files: a matrix expands per stack.
    preview = load_workflow(PREVIEW)
    assert "on" in preview and True not in preview
    assert sorted(stack for _, stack, _ in stack_jobs(preview, "preview")) == ["dev", "prod"]
    assert sorted(stack for _, stack, _ in stack_jobs(load_workflow(DEPLOY), "up")) == [
        "dev",
        "prod",
    ]


Mutation = Callable[[dict[str, Workflow]], None]


def job(workflows: dict[str, Workflow], name: str, job_id: str) -> Job:
    found: Job = workflows[name]["jobs"][job_id]
    return found


def step_of(workflows: dict[str, Workflow], name: str, job_id: str, action: str) -> dict[str, Any]:
    return next(s for s in steps(job(workflows, name, job_id)) if action_of(s) == action)


def pulumi_step(workflows: dict[str, Workflow], name: str, job_id: str) -> dict[str, Any]:
    return next(
        s
        for s in steps(job(workflows, name, job_id))
        if action_of(s) == PULUMI_ACTION and "with" in s
    )


def drop_step(workflows: dict[str, Workflow], name: str, job_id: str, action: str) -> None:
    target = job(workflows, name, job_id)
    target["steps"] = [s for s in steps(target) if action_of(s) != action]


BREAKAGES: list[tuple[str, str, Mutation, str]] = [
    (
        "preview also on push",
        "triggers",
        lambda w: w["preview.yml"]["on"].update({"push": None}),
        "preview must trigger on pull_request only",
    ),
    (
        "deploy from any branch",
        "triggers",
        lambda w: w["deploy.yml"]["on"]["push"].pop("branches"),
        "deploy must trigger on push to main only",
    ),
    (
        "deploy without tests",
        "triggers",
        lambda w: w["deploy.yml"]["jobs"].pop("tests"),
        "deploy must call the tests workflow once",
    ),
    (
        "tests not reusable",
        "triggers",
        lambda w: w["tests.yml"].update({"on": {"push": None}}),
        "tests must be a reusable workflow",
    ),
    (
        "tests run something else",
        "triggers",
        lambda w: job(w, "tests.yml", "tests")["steps"][-1].update({"run": "pytest"}),
        "the tests workflow must run the test command scripts/test",
    ),
    (
        "write-all at the top",
        "permissions",
        lambda w: w["deploy.yml"].update({"permissions": "write-all"}),
        "top-level permissions must be contents: read",
    ),
    (
        "no id-token for auth",
        "permissions",
        lambda w: job(w, "preview.yml", "preview")["permissions"].pop("id-token"),
        "job preview: authenticates to GCP without id-token: write",
    ),
    (
        "no pull-requests for comments",
        "permissions",
        lambda w: job(w, "preview.yml", "preview")["permissions"].pop("pull-requests"),
        "job preview: comments on the PR without pull-requests: write",
    ),
    (
        "extra write permission",
        "permissions",
        lambda w: job(w, "deploy.yml", "up-dev")["permissions"].update({"packages": "write"}),
        "job up-dev: permissions beyond its needs: {'packages': 'write'}",
    ),
    (
        "job without permissions",
        "permissions",
        lambda w: job(w, "deploy.yml", "up-prod").pop("permissions"),
        "job up-prod: permissions must be an explicit mapping",
    ),
    (
        "JSON key",
        "gcp-auth",
        lambda w: step_of(w, "deploy.yml", "up-prod", GCP_AUTH_ACTION)["with"].update(
            {"credentials_json": "${{ secrets.GCP_KEY }}"}
        ),
        "a key or secret is referenced",
    ),
    (
        "service account hard-coded",
        "gcp-auth",
        lambda w: step_of(w, "preview.yml", "preview", GCP_AUTH_ACTION)["with"].update(
            {"service_account": "deployer@acme.iam.gserviceaccount.com"}
        ),
        "job preview: auth input service_account must come from vars.*",
    ),
    (
        "no WIF provider",
        "gcp-auth",
        lambda w: step_of(w, "deploy.yml", "up-dev", GCP_AUTH_ACTION)["with"].pop(
            "workload_identity_provider"
        ),
        "job up-dev: auth input workload_identity_provider must come from vars.*",
    ),
    (
        "prod not previewed",
        "previews",
        lambda w: job(w, "preview.yml", "preview")["strategy"]["matrix"].update({"stack": ["dev"]}),
        "previews must cover each of ['dev', 'prod'] once, not ['dev']",
    ),
    (
        "no PR comment",
        "previews",
        lambda w: pulumi_step(w, "preview.yml", "preview")["with"].update({"comment-on-pr": False}),
        "job preview (dev): preview does not comment on the PR",
    ),
    (
        "forks not skipped",
        "previews",
        lambda w: job(w, "preview.yml", "preview").pop("if"),
        "job preview (prod): preview must be skipped for forks",
    ),
    (
        "preview before tests",
        "previews",
        lambda w: job(w, "preview.yml", "preview").pop("needs"),
        "job preview (dev): preview must need the tests job",
    ),
    (
        "preview without auth",
        "previews",
        lambda w: drop_step(w, "preview.yml", "preview", GCP_AUTH_ACTION),
        "job preview: google-github-actions/auth must run before pulumi preview",
    ),
    (
        "no fork notice",
        "fork-notice",
        lambda w: w["preview.yml"]["jobs"].pop("fork-notice"),
        "no job runs for fork pull requests",
    ),
    (
        "silent fork notice",
        "fork-notice",
        lambda w: job(w, "preview.yml", "fork-notice").update({"steps": [{"run": "true"}]}),
        "job fork-notice: must explain the fork skip as a notice and a summary",
    ),
    (
        "prod not after dev",
        "deploys",
        lambda w: job(w, "deploy.yml", "up-prod").pop("needs"),
        "job up-prod: up prod must need up-dev",
    ),
    (
        "prod unprotected",
        "deploys",
        lambda w: job(w, "deploy.yml", "up-prod").pop("environment"),
        "job up-prod: up prod must run in the protected prod environment",
    ),
    (
        "dev before tests",
        "deploys",
        lambda w: job(w, "deploy.yml", "up-dev").update({"needs": []}),
        "job up-dev: up dev must need the tests job",
    ),
    (
        "no QEMU for up",
        "deploys",
        lambda w: drop_step(w, "deploy.yml", "up-prod", QEMU_ACTION),
        "job up-prod: docker/setup-qemu-action must run before pulumi up",
    ),
    (
        "no Buildx for up",
        "deploys",
        lambda w: drop_step(w, "deploy.yml", "up-dev", BUILDX_ACTION),
        "job up-dev: docker/setup-buildx-action must run before pulumi up",
    ),
    (
        "stacks share a group",
        "concurrency",
        lambda w: job(w, "deploy.yml", "up-prod")["concurrency"].update({"group": "pulumi-dev"}),
        "group pulumi-dev is shared by dev and prod",
    ),
    (
        "preview group without the stack",
        "concurrency",
        lambda w: job(w, "preview.yml", "preview")["concurrency"].update(
            {"group": "preview-${{ github.event.pull_request.number }}"}
        ),
        "job preview (dev): group 'preview-${{ github.event.pull_request.number }}' must name",
    ),
    (
        "cancelling deployments",
        "concurrency",
        lambda w: job(w, "deploy.yml", "up-dev")["concurrency"].update(
            {"cancel-in-progress": True}
        ),
        "job up-dev: up must set cancel-in-progress: false",
    ),
    (
        "no concurrency",
        "concurrency",
        lambda w: job(w, "deploy.yml", "up-prod").pop("concurrency"),
        "job up-prod (prod): needs a concurrency mapping",
    ),
    (
        "mutation on pull requests",
        "mutation",
        lambda w: w["mutation.yml"]["on"].update({"pull_request": None}),
        "mutation must run on a schedule (and by hand) only",
    ),
    (
        "mutation daily",
        "mutation",
        lambda w: w["mutation.yml"]["on"]["schedule"][0].update({"cron": "17 3 * * *"}),
        "mutation must run weekly",
    ),
    (
        "mutation not run",
        "mutation",
        lambda w: next(
            s for s in steps(job(w, "mutation.yml", "mutation")) if s.get("run") == MUTATION_RUN
        ).update({"run": "true"}),
        "the mutation workflow must run scripts/mutation",
    ),
    (
        "report lost when mutation fails",
        "mutation",
        lambda w: step_of(w, "mutation.yml", "mutation", UPLOAD_ACTION).pop("if"),
        "job mutation: upload the report after scripts/mutation, if: always()",
    ),
    (
        "another file uploaded",
        "mutation",
        lambda w: step_of(w, "mutation.yml", "mutation", UPLOAD_ACTION)["with"].update(
            {"path": "mutants/"}
        ),
        "job mutation: the upload must be the report",
    ),
    (
        "mutation on every submission",
        "mutation",
        lambda w: job(w, "tests.yml", "tests")["steps"].append({"run": "scripts/mutation"}),
        "job tests: only the weekly workflow runs scripts/mutation",
    ),
    (
        "mutation job may write",
        "permissions",
        lambda w: job(w, "mutation.yml", "mutation")["permissions"].update({"actions": "write"}),
        "job mutation: permissions beyond its needs: {'actions': 'write'}",
    ),
]


def broken_copy(tmp_path: Path, mutate: Mutation) -> Path:
    """The workflows, parsed, mutated and written back as YAML into tmp_path."""
    workflows = {path.name: load_workflow(path) for path in WORKFLOWS.glob("*.yml")}
    mutate(workflows)
    for name, workflow in workflows.items():
        (tmp_path / name).write_text(yaml.safe_dump(workflow, sort_keys=False))
    return tmp_path


@pytest.mark.parametrize(
    ("check", "mutate", "expected"),
    [pytest.param(check, mutate, expected, id=name) for name, check, mutate, expected in BREAKAGES],
)
def test_each_check_catches_its_breakage(
    tmp_path: Path, check: str, mutate: Mutation, expected: str
) -> None:
    found = violations(broken_copy(tmp_path, mutate))[check]
    assert any(expected in problem for problem in found), f"{expected!r} not in {found}"


def test_an_unbroken_round_trip_only_loses_the_version_comments(tmp_path: Path) -> None:
    # The round trip through safe_dump drops comments; nothing else may change a verdict.
    found = violations(broken_copy(tmp_path, lambda w: None))
    assert {check: problems for check, problems in found.items() if problems}.keys() == {"pins"}
    assert all("has no `# vX.Y.Z` comment" in problem for problem in found["pins"])


CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            CHECKOUT, "actions/checkout@v7", "is not pinned to a full commit SHA", id="tag"
        ),
        pytest.param(
            CHECKOUT, CHECKOUT[:-33], "is not pinned to a full commit SHA", id="short-sha"
        ),
        pytest.param(CHECKOUT, "actions/checkout@main", "is not pinned", id="branch"),
        pytest.param(
            f"{CHECKOUT} # v7.0.1", CHECKOUT, "has no `# vX.Y.Z` comment", id="no-version-comment"
        ),
        pytest.param(
            f"{CHECKOUT} # v7.0.1", f"{CHECKOUT} # v7.0.0", "pinned inconsistently", id="drift"
        ),
    ],
)
def test_pins_are_checked_in_the_file_text(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    for path in WORKFLOWS.glob("*.yml"):
        shutil.copy(path, tmp_path / path.name)
    preview = tmp_path / "preview.yml"
    assert old in preview.read_text()
    preview.write_text(preview.read_text().replace(old, new, 1))
    found = violations(tmp_path)
    assert any(expected in problem for problem in found["pins"]), found["pins"]
    assert [check for check, problems in found.items() if problems] == ["pins"]


def actionlint() -> Path:
    """The actionlint binary from requirements-dev.txt; CI must have it."""
    found = shutil.which("actionlint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if found is None:
        reason = "actionlint is not installed (pip install -r requirements-dev.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(found)


def run_actionlint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(actionlint()), "-no-color", "-oneline", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actionlint_accepts_the_workflows() -> None:
    result = run_actionlint(sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    for path in WORKFLOWS.glob("*.yml"):
        shutil.copy(path, broken / path.name)
    deploy = broken / "deploy.yml"
    deploy.write_text(deploy.read_text().replace("needs: up-dev", "needs: up-staging"))
    result = run_actionlint([deploy])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "up-staging" in result.stdout
