"""Side by side with Gas Town's real `gt` (v1.0.0) and beads' real `bd` (1.0.0) in the same towns.

Both come from the project's setup (`./dev`: gt-dolt install --bd --gt, cached beside Dolt); without
them these tests fail, never skip.  gt insists on port 3307 in places, so every test makes its own
network namespace (`unshare -rnm`: a user namespace too, so an ordinary user can make one where
user namespaces are allowed; loopback up), with a root of its own and a private /tmp (bd keeps a circuit breaker in
/tmp/beads-circuit, keyed by host:port; gt's Dolt may make /tmp/mysql.sock).  gt, bd, gt-dolt and
the Dolt servers they start all run inside it, and each test has its own HOME with a git and Dolt
identity.  Nothing here needs root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import GT_DOLT, old_database
from faultkit import assert_clean
from gastown_tasks.ops.build.binary import cache_root, dolt_env
from gastown_tasks.ops.build.gobuild import bd_binary, bd_version, gt_binary, tool_version
from gastown_tasks.ops.files import staging
from gastown_tasks.ops.host import procs

KILL_AT = Path(__file__).parent / "kill_at.py"
HOLDER_STARTS = 10.0  # seconds for `unshare` to make the namespace
PIVOT_ROOT = shutil.which("pivot_root", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "pivot_root"

TOWN_TASKS = """
from invoke import Collection
import gastown_tasks
from gastown_tasks.tasks import onboard
ns = Collection(*onboard.STEPS)
gastown_tasks.add_dolt(ns)
ns.configure({"onboard": {"rigs": "hq,gastown"}})
"""


@pytest.fixture(scope="session")
def tools(dolt_binary: Path) -> dict[str, Path]:
    """The real gt, bd and Dolt, as the setup built them."""
    found = {"gt": gt_binary(), "bd": bd_binary(), "dolt": dolt_binary}
    if not (found["gt"].is_file() and tool_version(found["gt"])):
        pytest.fail(f"no gt at {found['gt']}: run ./dev test (gt-dolt install --gt) to build it", pytrace=False)
    if not (found["bd"].is_file() and bd_version(found["bd"])):
        pytest.fail(f"no bd at {found['bd']}: run ./dev test (gt-dolt install --bd) to build it", pytrace=False)
    if shutil.which("unshare") is None or shutil.which("nsenter") is None or shutil.which("ip") is None:
        pytest.fail("these tests need unshare, nsenter (util-linux) and ip (iproute2)", pytrace=False)
    return found


class Namespace:
    """A network, user and mount namespace of one test, with a root of its own: loopback up, /tmp
    private but for the test's own folder (and the tools, should they live in /tmp).

    The root is a tmpfs that the namespace's root owns, with every other top-level folder of the
    machine bound into it.  Without it, an ordinary user's namespace shows the machine's / as
    belonging to uid 65534 (root is not mapped in it), and gt-dolt rightly refuses a town below a
    folder of another user; on a real machine / belongs to root.  Commands run in it through
    nsenter; the holder process is killed by pid at the end."""

    def __init__(self, keep: list[Path]) -> None:
        """`keep`: what must stay visible under /tmp (the test's folder, tools that live there)."""
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (the holder writes to it until close())
        self.holder = subprocess.Popen(
            ["unshare", "-rnm", "sh", "-c", self._script(keep)],
            stdin=subprocess.DEVNULL,
            stdout=self._errors,
            stderr=self._errors,
            start_new_session=True,
        )
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + HOLDER_STARTS
        while not self._entered(ours):
            if time.monotonic() > deadline or self.holder.poll() is not None:
                self.close()
                self._errors.seek(0)
                said = self._errors.read(4000).decode(errors="replace").strip()
                pytest.fail(f"unshare -rnm could not make the test's namespace: {said}", pytrace=False)
            time.sleep(0.01)

    @staticmethod
    def _script(keep: list[Path]) -> str:
        """What the holder runs in its fresh namespaces before it becomes `sleep` in its own root."""
        new = next(p for p in ("/mnt", "/media", "/srv", "/opt") if os.path.isdir(p))
        kept = sorted({Path("/tmp", *path.parts[2:3]) for path in keep if path.parts[1:2] == ("tmp",)})
        q = shlex.quote
        script = ["set -e", "ip link set lo up", f"mount -n -t tmpfs -o mode=755 tmpfs {q(new)}"]
        for entry in sorted(os.scandir("/"), key=lambda e: e.name):
            into = f"{new}/{entry.name}"
            if entry.is_symlink():
                script.append(f"ln -s {q(os.readlink(entry.path))} {q(into)}")
            elif entry.path in (new, "/tmp"):
                script.append(f"mkdir {q(into)}")
            elif entry.is_dir():
                script += [f"mkdir {q(into)}", f"mount -n --rbind {q(entry.path)} {q(into)}"]
        script.append(f"mount -n -t tmpfs -o mode=1777 tmpfs {q(new + '/tmp')}")
        for folder in kept:
            script += [f"mkdir -p {q(new + str(folder))}", f"mount -n --bind {q(str(folder))} {q(new + str(folder))}"]
        # pivot_root, not chroot: the test reads the servers' folders from outside, through /proc,
        # and sees the paths it knows only when the new root is the namespace's root
        old = f"{new}/.old-root"
        script += [f"mkdir {q(old)}", f"cd {q(new)}", f"{q(PIVOT_ROOT)} . .old-root", "umount -n -l /.old-root"]
        script += ["rmdir /.old-root", "cd /", "exec sleep infinity"]
        return "\n".join(script)

    def _entered(self, ours: str) -> bool:
        """The holder is in its namespaces and its own root: it becomes `sleep` only after that."""
        try:
            with open(f"/proc/{self.holder.pid}/cmdline", "rb") as cmdline:
                ran = cmdline.read().split(b"\0")[0]
            return os.readlink(f"/proc/{self.holder.pid}/ns/net") != ours and os.path.basename(ran) == b"sleep"
        except OSError:
            return False

    def _enter(self, cwd: Path) -> list[str]:
        """nsenter into the holder's namespaces and root (-r), then into `cwd` as seen from there."""
        into = ["nsenter", "-t", str(self.holder.pid), "-U", "-n", "-m", "-r", "--preserve-credentials"]
        return [*into, "env", "-C", str(cwd)]

    def run(
        self, argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._enter(cwd), *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def popen(self, argv: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self._enter(cwd), *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(timeout=30)
        self._errors.close()


class GasTown:
    """One test's town, HOME and tools, run inside the test's namespace (or, with `ns=None`, on the
    machine's loopback for tests that need no gt)."""

    def __init__(self, base: Path, tools: dict[str, Path], ns: Namespace | None) -> None:
        self.base = base
        self.root = base / "town"
        self.home = base / "home"
        self.bin = base / "bin"
        self.ns = ns
        for folder in (self.home / ".dolt", self.bin, base / "tmp"):
            folder.mkdir(parents=True)
        for name, path in tools.items():
            (self.bin / name).symlink_to(path)
        (self.home / ".gitconfig").write_text("[user]\n\tname = gastown tests\n\temail = tests@gastown.invalid\n")
        (self.home / ".dolt" / "config_global.json").write_text(
            json.dumps(
                {
                    "user.name": "gastown tests",
                    "user.email": "tests@gastown.invalid",
                    "metrics.disabled": "true",
                    "versioncheck.disabled": "true",
                }
            )
        )

    def env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in dolt_env().items() if not k.startswith(("GT_", "BEADS_", "INVOKE_", "DOLT_"))}
        keep.update(
            HOME=str(self.home),
            DOLT_ROOT_PATH=str(self.home),
            PATH=f"{self.bin}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            TMPDIR=str(self.base / "tmp"),
            DOLT_DISABLE_EVENT_FLUSH="1",
            BEADS_DOLT_AUTO_START="0",
            PYTHONDONTWRITEBYTECODE="1",
            GASTOWN_TASKS_CACHE=str(cache_root()),  # the pinned builds, not a build in this HOME
        )
        keep.update(extra)
        return keep

    def run(
        self, argv: list[str], cwd: Path | None = None, pwd: Path | None = None, timeout: float = 180, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run as a user would from `cwd` (the town by default); `pwd` is the path the shell gave."""
        where = cwd or self.root
        environ = self.env(PWD=str(pwd or where), **env)
        if self.ns is not None:
            return self.ns.run(argv, env=environ, cwd=pwd or where, timeout=timeout)
        return subprocess.run(
            argv, cwd=where, env=environ, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def gt(self, *args: str, cwd: Path | None = None, pwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.bin / "gt"), *args], cwd=cwd, pwd=pwd)

    def gt_dolt(
        self, *args: str, cwd: Path | None = None, pwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return self.run([*GT_DOLT, *args], cwd=cwd, pwd=pwd, **env)

    def bd(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.bin / "bd"), *args], cwd=cwd)

    def servers(self) -> list[psutil.Process]:
        """Every live dolt sql-server serving a folder of this test."""
        found = []
        for proc in procs.dolt_servers():
            served = procs.served_data_dir(proc) or ""
            if served.startswith(os.path.realpath(self.base) + os.sep):
                found.append(proc)
        return found

    def rig_folder(self, name: str) -> Path:
        """A rig folder as a user makes one before `bd init`: a git repository."""
        folder = self.root if name == "hq" else self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        assert_clean(self.run(["git", "init", "-q", str(folder)]), 0)
        assert_clean(self.run(["git", "-C", str(folder), "config", "beads.role", "maintainer"]), 0)
        return folder

    def bd_embedded(self, rig: str, prefix: str, issues: int) -> Path:
        """`bd init` as bd 1.0 does by default (embedded), then `issues` issues."""
        folder = self.rig_folder(rig)
        done = self.bd("init", "--prefix", prefix, "--non-interactive", "--skip-agents", "--skip-hooks", cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads((folder / ".beads" / "metadata.json").read_text())["dolt_mode"] == "embedded"
        for i in range(issues):
            created = self.bd("create", f"{rig} issue {i}", cwd=folder)
            assert created.returncode == 0, created.stdout + created.stderr
        return folder

    def bd_titles(self, folder: Path) -> list[str]:
        done = self.bd("list", "--json", "--limit", "0", cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
        return sorted(issue["title"] for issue in json.loads(done.stdout))

    def close(self) -> None:
        """Stop what this test started: both tools' stop, then any Dolt of this test, by pid."""
        if self.root.is_dir():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.gt_dolt("stop", "--force")
            if self.ns is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.gt("dolt", "stop")
        for proc in self.servers():
            procs.terminate(proc, timeout=10)


@pytest.fixture
def gastown(tmp_path: Path, tools: dict[str, Path]) -> Iterator[GasTown]:
    """A town's surroundings inside a namespace of this test: gt, bd, gt-dolt, a HOME."""
    used = [tmp_path, Path(sys.prefix), Path(os.path.realpath(sys.executable)), cache_root()]
    ns = Namespace([*used, *(Path(os.path.realpath(tool)) for tool in tools.values())])
    town = GasTown(tmp_path, tools, ns)
    try:
        yield town
    finally:
        town.close()
        ns.close()


def make_town(g: GasTown) -> Path:
    """A bare town (mayor/town.json), as gt-dolt's own tests make one."""
    (g.root / "mayor").mkdir(parents=True)
    (g.root / "mayor" / "town.json").write_text('{"name": "test-town"}\n')
    return g.root


def gt_install(g: GasTown, *args: str) -> None:
    """`gt install` of the town, then gt's own server stopped (it starts one)."""
    done = g.run([str(g.bin / "gt"), "install", str(g.root), *args], cwd=g.base)
    assert done.returncode == 0, done.stdout + done.stderr
    if "--no-beads" not in args:
        stopped = g.gt("dolt", "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not g.servers()


def state_pid(g: GasTown) -> int | None:
    state = json.loads((g.root / "daemon" / "dolt-state.json").read_text())
    return state["pid"] if state.get("running") else None


def only_server(g: GasTown) -> psutil.Process:
    servers = g.servers()
    assert len(servers) == 1, [p.cmdline() for p in servers]
    return servers[0]


# --- 1. bd 1.0's embedded layout: migrated by onboarding, never hidden ----------------------------


def test_issues_made_with_bd_before_onboarding_are_all_listed_by_bd_after_it(gastown: GasTown) -> None:
    g = gastown
    gt_install(g, "--no-beads")
    hq = g.bd_embedded("hq", "hq", 3)
    gastown_rig = g.bd_embedded("gastown", "gt", 5)
    before = {"hq": g.bd_titles(hq), "gastown": g.bd_titles(gastown_rig)}
    assert [len(titles) for titles in before.values()] == [3, 5]
    (g.root / "tasks.py").write_text(TOWN_TASKS)

    done = g.run([sys.executable, "-m", "invoke", "onboard"], timeout=300)
    assert_clean(done, 0)
    assert "ok: migrated hq, gastown" in done.stdout and "everything is in place" in done.stdout
    assert "verified: " in done.stdout  # the row counts, before and after each move

    assert {"hq": g.bd_titles(hq), "gastown": g.bd_titles(gastown_rig)} == before
    for folder, rig in ((hq, "hq"), (gastown_rig, "gastown")):
        metadata = json.loads((folder / ".beads" / "metadata.json").read_text())
        assert metadata["dolt_mode"] == "server" and metadata["dolt_database"] == rig
        assert not [p for p in (folder / ".beads" / "embeddeddolt").iterdir() if p.is_dir()]
    server = only_server(g)
    assert "no orphan" not in g.gt("dolt", "list").stdout and "(orphan)" not in g.gt("dolt", "list").stdout
    status = g.gt("dolt", "status")
    assert f"Dolt server is running (PID {server.pid})" in status.stdout, status.stdout
    assert_clean(g.gt_dolt("doctor"), 0)


def test_migrate_then_rollback_bd_lists_the_issues_it_listed_before_from_its_own_database(gastown: GasTown) -> None:
    g = gastown
    gt_install(g, "--no-beads")
    folders = {"hq": g.bd_embedded("hq", "hq", 2), "gastown": g.bd_embedded("gastown", "gt", 3)}
    before = {rig: g.bd_titles(folder) for rig, folder in folders.items()}
    metadata = {rig: (folder / ".beads" / "metadata.json").read_bytes() for rig, folder in folders.items()}
    migrated = g.gt_dolt("migrate")
    assert_clean(migrated, 0)
    assert "kept what this migration moves in" in migrated.stdout
    assert_clean(g.gt_dolt("start"), 0)
    assert {rig: g.bd_titles(folder) for rig, folder in folders.items()} == before  # through the server

    done = g.gt_dolt("rollback")
    assert_clean(done, 0)
    assert "rig hq: bd reads" in done.stdout and "rig gastown: bd reads" in done.stdout
    assert not g.servers()
    for rig, folder in folders.items():
        assert (folder / ".beads" / "metadata.json").read_bytes() == metadata[rig]
    assert {rig: g.bd_titles(folder) for rig, folder in folders.items()} == before  # embedded, as before


def test_while_embedded_data_is_outside_the_server_doctor_fails_and_no_command_flips_the_beads(
    gastown: GasTown,
) -> None:
    g = gastown
    make_town(g)
    hq = g.bd_embedded("hq", "hq", 3)
    metadata = hq / ".beads" / "metadata.json"
    before = metadata.read_bytes()
    held = str(hq / ".beads" / "embeddeddolt" / "hq")

    doctor = g.gt_dolt("doctor")
    assert_clean(doctor, 1)
    assert f"fail beads hq: {held} holds issues the server does not serve" in doctor.stdout
    assert "fix: gt-dolt migrate" in doctor.stdout
    refused = g.gt_dolt("init-rig", "hq")
    assert_clean(refused, 1)
    assert f"rig hq: {held} holds issues" in refused.stderr and "gt-dolt migrate" in refused.stderr
    assert not (g.root / ".dolt-data" / "hq").exists()
    assert_clean(g.gt_dolt("init-rig", "other"), 0)  # another rig is fine, and its beads are not this one's
    started = g.gt_dolt("start")
    assert_clean(started, 0)
    assert "beads: rig hq:" in started.stdout and "gt-dolt migrate" in started.stdout
    fixed = g.gt_dolt("doctor", "--fix")
    assert_clean(fixed, 1)
    assert "beads: rig hq:" in fixed.stdout and "fail beads hq" in fixed.stdout
    metadata_fix = g.gt_dolt("fix-metadata")
    assert_clean(metadata_fix, 1)
    assert "not pointed at the server: rig hq:" in metadata_fix.stderr and "gt-dolt migrate" in metadata_fix.stderr
    assert metadata.read_bytes() == before  # still embedded: bd still sees every issue
    assert len(g.bd_titles(hq)) == 3

    assert_clean(g.gt_dolt("stop"), 0)
    assert_clean(g.gt_dolt("migrate"), 0)
    assert_clean(g.gt_dolt("start"), 0)
    assert len(g.bd_titles(hq)) == 3
    assert_clean(g.gt_dolt("doctor"), 0)


# --- 2. migrate: every layout gt v1.0 and bd 1.0 make, through redirects, verified ----------------


def _dolt_database(g: GasTown, folder: Path, rows: int) -> Path:
    """A committed Dolt database with `rows` issues, as bd's own server or the old layout keeps one."""
    old_database(Path(g.bin / "dolt"), folder, [(i, f"row {i}") for i in range(rows)])
    return folder


def test_migrate_moves_every_layout_through_redirects_with_gts_rig_names_and_verifies_each(gastown: GasTown) -> None:
    g = gastown
    gt_install(g, "--no-beads")
    sources = {
        "hq": _dolt_database(g, g.root / ".beads" / "dolt" / "beads", 2),  # the first layout gt knew
        "alpha": _dolt_database(g, g.root / "alpha" / ".beads" / "dolt" / "al", 3),  # bd's own server
        "gamma": _dolt_database(g, g.root / "gamma" / "mayor" / "rig" / ".beads" / "dolt" / "gm", 4),
    }
    (g.root / "gamma" / ".beads").mkdir(parents=True)
    (g.root / "gamma" / ".beads" / "redirect").write_text("mayor/rig/.beads\n")  # as gt rig add writes it
    beta = g.bd_embedded("beta", "be", 5)  # bd 1.0's default
    sources["beta"] = beta / ".beads" / "embeddeddolt" / "be"
    two = g.root / "delta" / ".beads" / "dolt"
    _dolt_database(g, two / "one", 1)
    _dolt_database(g, two / "two", 1)

    ours = g.gt_dolt("migrate", "--dry-run")
    assert_clean(ours, 0)
    for rig, source in sources.items():
        assert f"would move {source} -> {g.root / '.dolt-data' / rig}" in ours.stdout, ours.stdout
    assert f"skip {g.root / 'delta' / '.beads'}: rig delta has 2 beads databases" in ours.stdout
    theirs = g.gt("dolt", "migrate", "--dry-run")
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    for rig in ("hq", "alpha", "gamma"):  # every source gt finds, gt-dolt finds, for the same rig
        assert str(sources[rig]) in theirs.stdout and str(g.root / ".dolt-data" / rig) in theirs.stdout

    done = g.gt_dolt("migrate")
    assert_clean(done, 0)
    assert done.stdout.count("  verified: ") == 4 and "summary: moved 4, skipped 1" in done.stdout
    for rig, source in sources.items():
        assert not source.exists()
        counted = g.run([str(g.bin / "dolt"), "sql", "-r", "csv", "-q", "SHOW TABLES"], cwd=g.root / ".dolt-data" / rig)
        assert counted.returncode == 0 and "issues" in counted.stdout
    assert (two / "one" / ".dolt").is_dir() and (two / "two" / ".dolt").is_dir()  # not guessed at
    assert json.loads((beta / ".beads" / "metadata.json").read_text())["dolt_mode"] == "server"
    assert_clean(g.gt_dolt("start"), 0)
    assert len(g.bd_titles(beta)) == 5
    rows = g.gt_dolt("sql", "--rig", "gamma", "-q", "SELECT COUNT(*) AS n FROM issues")
    assert_clean(rows, 0)
    assert "| 4 " in rows.stdout


# --- 3. one port per town, read as gt reads it ---------------------------------------------------


def _listening(g: GasTown, proc: psutil.Process) -> list[int]:
    """The ports `proc` listens on, seen from inside the test's namespace (its sockets live there)."""
    code = (
        f"import psutil; conns = psutil.Process({proc.pid}).net_connections('tcp'); "
        "print(sorted({c.laddr.port for c in conns if c.status == 'LISTEN'}))"
    )
    done = g.run([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_gt_install_dolt_port_town_is_served_where_gt_looks(gastown: GasTown) -> None:
    g = gastown
    gt_install(g, "--dolt-port", "3411")  # gt keeps it in .dolt-data/config.yaml (listener.port)
    started = g.gt_dolt("start")
    assert_clean(started, 0)
    assert ":3411, serving hq" in started.stdout
    server = only_server(g)
    assert _listening(g, server) == [3411]
    status = g.gt("dolt", "status")
    assert f"Dolt server is running (PID {server.pid})" in status.stdout and "Port: 3411" in status.stdout
    assert json.loads(g.gt_dolt("status", "--json").stdout)["port"] == 3411
    assert g.gt("dolt", "start").returncode == 0 and only_server(g).pid == server.pid  # gt: already running


def test_a_gt_config_set_dolt_port_town_is_served_where_gt_looks_and_a_start_elsewhere_is_refused(
    gastown: GasTown,
) -> None:
    g = gastown
    gt_install(g)
    assert g.gt("config", "set", "dolt.port", "3412").returncode == 0  # mayor/daemon.json env.GT_DOLT_PORT
    refused = g.gt_dolt("start", "--port", "3413")
    assert_clean(refused, 2)
    assert "mayor/daemon.json" in refused.stderr and "gt config set dolt.port 3413" in refused.stderr
    assert not g.servers()
    started = g.gt_dolt("start")
    assert_clean(started, 0)
    server = only_server(g)
    assert _listening(g, server) == [3412]
    status = g.gt("dolt", "status")
    assert f"Dolt server is running (PID {server.pid})" in status.stdout and "Port: 3412" in status.stdout
    assert (g.root / "daemon" / "dolt.pid").read_text().strip() == str(server.pid)  # gt kept our pid file


def test_start_port_is_kept_where_gt_reads_it(gastown: GasTown) -> None:
    g = gastown
    gt_install(g)  # gt started on 3307 once: config.yaml says 3307
    started = g.gt_dolt("start", "--port", "3414")
    assert_clean(started, 0)
    assert "port 3414 (from --port) is now in .dolt-data/config.yaml, where gt reads it too" in started.stdout
    server = only_server(g)
    assert json.loads(g.gt_dolt("status", "--json").stdout)["port"] == 3414  # no flag: the town's port
    assert "Port: 3414" in g.gt("dolt", "status").stdout
    assert_clean(g.gt_dolt("stop"), 0)
    assert g.gt("dolt", "start").returncode == 0  # gt starts it where we left it
    assert _listening(g, only_server(g)) == [3414] and only_server(g).pid != server.pid
    ignored = g.gt_dolt("status", GT_DOLT_PORT="3415")  # gt, too, reads config.yaml before GT_DOLT_PORT
    assert_clean(ignored, 0)
    assert "GT_DOLT_PORT=3415 is not used" in ignored.stdout and "gt-dolt restart --port 3415" in ignored.stdout


# --- 4. the same town path as gt -----------------------------------------------------------------


def test_from_a_symlinked_town_neither_tool_kills_or_forgets_the_others_server(gastown: GasTown) -> None:
    g = gastown
    gt_install(g)
    link = g.base / "link"
    link.symlink_to(g.root)
    started = g.gt_dolt("start", cwd=link, pwd=link)
    assert_clean(started, 0)
    ours = only_server(g)
    assert f"--config {link}/.dolt-data/config.yaml" in " ".join(ours.cmdline())
    assert json.loads((g.root / "daemon" / "dolt-state.json").read_text())["data_dir"] == f"{link}/.dolt-data"
    for command in (("dolt", "status"), ("dolt", "start"), ("dolt", "status")):
        done = g.gt(*command, cwd=link, pwd=link)
        assert done.returncode == 0, done.stdout + done.stderr
        assert only_server(g).pid == ours.pid  # not an imposter: not killed
        assert (g.root / "daemon" / "dolt.pid").read_text().strip() == str(ours.pid)  # not forgotten
    assert "Dolt server is running" in g.gt("dolt", "status", cwd=link, pwd=link).stdout
    stopped = g.gt("dolt", "stop", cwd=link, pwd=link)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not g.servers()
    assert g.gt("dolt", "start", cwd=link, pwd=link).returncode == 0
    theirs = only_server(g)
    status = g.gt_dolt("status", cwd=link, pwd=link)
    assert_clean(status, 0)
    assert f"pid {theirs.pid}" in status.stdout
    assert_clean(g.gt_dolt("stop", cwd=link, pwd=link), 0)
    assert not g.servers()


# --- 5. init-rig writes what gt's init-rig writes -------------------------------------------------


@pytest.mark.parametrize("running", [False, True], ids=["server stopped", "server running"])
def test_gt_dolt_list_shows_no_orphan_after_init_rig_and_cleanup_proposes_nothing(
    gastown: GasTown, running: bool
) -> None:
    g = gastown
    gt_install(g)
    if running:
        assert_clean(g.gt_dolt("start"), 0)
    assert_clean(g.gt_dolt("init-rig", "gastown"), 0)
    assert_clean(g.gt_dolt("init-rig", "beads"), 0)
    listed = g.gt("dolt", "list")
    assert listed.returncode == 0 and "orphan" not in listed.stdout, listed.stdout
    assert "gastown (gastown rig beads)" in listed.stdout and "beads (beads rig beads)" in listed.stdout
    cleanup = g.gt("dolt", "cleanup", "--dry-run")
    assert cleanup.returncode == 0 and "orphan" not in cleanup.stdout.lower().replace("no orphan", ""), cleanup.stdout
    gt_made = g.gt("dolt", "init-rig", "wasteland")  # and gt's own, for comparison
    assert gt_made.returncode == 0, gt_made.stdout + gt_made.stderr
    ours = json.loads((g.root / "gastown" / ".beads" / "metadata.json").read_text())
    theirs = json.loads((g.root / "wasteland" / ".beads" / "metadata.json").read_text())
    assert {**ours, "dolt_database": "x"} == {**theirs, "dolt_database": "x"}
    assert ours["dolt_database"] == "gastown"


# --- one server, whoever starts it ----------------------------------------------------------------


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_concurrent_starts_of_gt_dolt_and_gt_give_one_server(gastown: GasTown, round_: int) -> None:
    g = gastown
    gt_install(g)
    assert g.ns is not None
    env = g.env(PWD=str(g.root))
    theirs = g.ns.popen([str(g.bin / "gt"), "dolt", "start"], env=env, cwd=g.root)
    ours = g.ns.popen([*GT_DOLT, "start"], env=env, cwd=g.root)
    for proc in (theirs, ours):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, out + err
    server = only_server(g)
    status = g.gt_dolt("status")
    assert_clean(status, 0)
    assert f"pid {server.pid}" in status.stdout
    assert f"Dolt server is running (PID {server.pid})" in g.gt("dolt", "status").stdout


# --- 6. one managed config ------------------------------------------------------------------------


def _yaml_values(text: str) -> dict[str, str]:
    """Leaf key paths -> values of the block YAML both tools write (quotes dropped)."""
    values: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack and stack[-1][0] >= depth:
            stack.pop()
        path = ".".join([name for _, name in stack] + [key])
        if value.strip():
            values[path] = value.strip().strip('"')
        else:
            stack.append((depth, key))
    return values


def test_the_managed_config_has_gts_value_for_every_key_gt_writes_but_the_idle_reclaim(gastown: GasTown) -> None:
    g = gastown
    gt_install(g)  # gt started (and stopped) its server: its config.yaml is there
    config = g.root / ".dolt-data" / "config.yaml"
    theirs = _yaml_values(config.read_text())
    assert_clean(g.gt_dolt("start"), 0)
    ours = _yaml_values(config.read_text())
    assert "auto_gc_behavior" in config.read_text()
    differ = {key: (value, ours.get(key)) for key, value in theirs.items() if ours.get(key) != value}
    # gt writes no listener.host without GT_DOLT_HOST: nothing to compare.  The read timeout is
    # dolt.wait_timeout: what closes idle connections on the pinned Dolt (docs/operations.md)
    assert differ == {"listener.read_timeout_millis": ("300000", "30000")}, differ
    assert ours["listener.host"] == "127.0.0.1"  # ours: loopback, always (docs/operations.md)


# --- interrupted at any instant: the old state or the new one, never a half ----------------------


def _count(g: GasTown, database: Path) -> int | None:
    """Rows of `issues` as Dolt reads the database, or None when Dolt cannot open it."""
    done = g.run([str(g.bin / "dolt"), "sql", "-r", "csv", "-q", "SELECT COUNT(*) FROM issues"], cwd=database)
    return int(done.stdout.split()[-1]) if done.returncode == 0 else None


def _no_half_rig(g: GasTown, town: Path, rows: dict[str, int]) -> None:
    """Whatever a start would serve (every folder of .dolt-data holding .dolt) is whole, and so is
    every rig `list` shows."""
    data = town / ".dolt-data"
    served = [p for p in data.iterdir() if p.name != ".dolt" and (p / ".dolt").is_dir()] if data.is_dir() else []
    for folder in served:
        assert folder.name in rows, f"{folder} would be served: it is no rig"
        assert _count(g, folder) == rows[folder.name], f"{folder} is not whole"
    listed = g.gt_dolt("list", "--json", cwd=town, pwd=town)
    assert_clean(listed, 0)
    assert {rig["name"] for rig in json.loads(listed.stdout)} == {p.name for p in served}


def _template(g: GasTown, exdev: bool) -> tuple[Path, str, Path]:
    """A town with one rig's beads outside the server: (town, rig, source).  The rename case has
    bd 1.0's embedded hq database (with bd's lock file beside it); the copy case bd's own-server
    layout of a rig."""
    town = g.base / "template"
    (town / "mayor").mkdir(parents=True)
    (town / "mayor" / "town.json").write_text("{}\n")
    if exdev:
        source = Path("gastown/.beads/dolt/gt")
        old_database(g.bin / "dolt", town / source, [(1, "x"), (2, "y"), (3, "z")])
        return town, "gastown", source
    source = Path(".beads/embeddeddolt/hq")
    old_database(g.bin / "dolt", town / source, [(1, "a"), (2, "b"), (3, "c")])
    (town / ".beads" / "embeddeddolt" / ".lock").write_text("")
    (town / ".beads" / "metadata.json").write_text(
        json.dumps({"backend": "dolt", "database": "dolt", "dolt_mode": "embedded", "dolt_database": "hq"})
    )
    return town, "hq", source


def _killed(g: GasTown, town: Path, at: int, how: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    count = g.base / "count"
    return g.run(
        [sys.executable, "-P", str(KILL_AT), str(at), how, *args],
        cwd=town,
        pwd=town,
        KILL_AT_COUNT=str(count),
        **env,
    )


@pytest.mark.parametrize("exdev", [False, True], ids=["rename", "copy across file systems"])
def test_migrate_interrupted_at_any_instant_leaves_the_old_state_or_the_new(gastown: GasTown, exdev: bool) -> None:
    """Killed (kill -9; Ctrl-C at every 5th) just before each of its changes to the file system."""
    g = gastown
    template, rig, source = _template(g, exdev)
    env = {"KILL_AT_EXDEV": "1"} if exdev else {}
    probe = g.base / "probe"
    shutil.copytree(template, probe, symlinks=True)
    assert_clean(_killed(g, probe, 0, "KILL", "migrate", **env), 0)
    instants = int((g.base / "count").read_text())
    assert instants > 5, instants
    for at in range(1, instants + 1):
        town = g.base / f"at-{at}"
        shutil.copytree(template, town, symlinks=True)
        killed = _killed(g, town, at, "INT" if at % 5 == 0 else "KILL", "migrate", **env)
        assert "Traceback" not in killed.stderr
        _no_half_rig(g, town, {rig: 3})
        old, new = _count(g, town / source), _count(g, town / ".dolt-data" / rig)
        assert 3 in (old, new), f"after instant {at}: the rig's issues are neither here nor there"
        assert_clean(g.gt_dolt("migrate", cwd=town, pwd=town), 0)  # the next run finishes (or redoes) it
        assert not (town / source).exists() and _count(g, town / ".dolt-data" / rig) == 3, f"instant {at}"
        assert staging.leftovers(town / ".dolt-data") == [] and not (town / "daemon" / "dolt-migrate.json").exists()
        assert not list(town.rglob(".discarded-*"))
        if not exdev:
            assert json.loads((town / ".beads" / "metadata.json").read_text())["dolt_mode"] == "server"
        shutil.rmtree(town)


def test_init_rig_interrupted_at_any_instant_leaves_no_half_rig_and_a_rerun_completes_it(gastown: GasTown) -> None:
    g = gastown
    template = g.base / "template"
    (template / "mayor").mkdir(parents=True)
    (template / "mayor" / "town.json").write_text("{}\n")
    probe = g.base / "probe"
    shutil.copytree(template, probe)
    assert_clean(_killed(g, probe, 0, "KILL", "init-rig", "hq"), 0)
    instants = int((g.base / "count").read_text())
    assert instants > 5, instants
    for at in range(1, instants + 1):
        town = g.base / f"at-{at}"
        shutil.copytree(template, town)
        killed = _killed(g, town, at, "INT" if at % 5 == 0 else "KILL", "init-rig", "hq")
        assert "Traceback" not in killed.stderr
        data = town / ".dolt-data"
        served = [p for p in data.iterdir() if p.name != ".dolt" and (p / ".dolt").is_dir()] if data.is_dir() else []
        assert [p.name for p in served] in ([], ["hq"]), served
        for folder in served:
            log = g.run([str(g.bin / "dolt"), "log", "-n", "1"], cwd=folder)
            assert log.returncode == 0, f"after instant {at}: {folder} is not whole: {log.stderr}"
        again = g.gt_dolt("init-rig", "hq", cwd=town, pwd=town)
        assert again.returncode in (0, 1), again.stderr
        if again.returncode == 1:
            assert "already exists" in again.stderr
        metadata = json.loads((town / ".beads" / "metadata.json").read_text())
        assert metadata["dolt_database"] == "hq" and metadata["dolt_mode"] == "server"
        assert (town / ".dolt-data" / "hq" / ".dolt").is_dir() and staging.leftovers(data) == []
        shutil.rmtree(town)
