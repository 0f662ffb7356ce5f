"""The command surface, written once: each command's name, arguments, help and handler.

Both entry points are derived from this table: the Invoke collection (`invoke dolt.<name>`,
`pre=[dolt.start]`) builds its tasks from it, and `gt-dolt` parses plain command lines with it
without importing Invoke.  Plain data only (NamedTuples: see gastown_tasks.ops on why): importing
this module costs next to nothing.

Every option that takes a value is text on both paths (validated by the settings, never cast by
Invoke), so a bad value is the same one-line error, exit 2, whichever way it came in.
"""

from __future__ import annotations

from typing import NamedTuple

PORT = "TCP port (default: dolt.port, else the town's, as gt reads it: docs/gastown.md)"


class Option(NamedTuple):
    name: str  # the Python parameter name, e.g. "json_", "dry_run"
    help: str
    flag: bool = False  # a switch (default False); otherwise it takes a value (default None)
    positional: bool = False  # required, given without a flag

    @property
    def dashed(self) -> str:
        """The name on the command line, as Invoke derives it: underscores to dashes, edges stripped."""
        return self.name.strip("_").replace("_", "-")

    @property
    def long(self) -> str:
        return f"-{self.dashed}" if len(self.dashed) == 1 else f"--{self.dashed}"


class Command(NamedTuple):
    name: str
    handler: str  # "module:function" under gastown_tasks.commands
    doc: str  # first line: the summary `--list` shows; then details and examples
    options: tuple[Option, ...] = ()
    default: bool = False

    @property
    def function(self) -> str:
        return self.handler.split(":")[1]

    def short_flags(self) -> dict[str, str]:
        """Option name -> its short flag, chosen exactly as Invoke chooses them (first free letter)."""
        taken = {option.name for option in self.options}
        shorts: dict[str, str] = {}
        for option in self.options:
            names = {option.dashed}
            for char in option.dashed:
                if not (char == option.dashed or char in taken):
                    shorts[option.name] = char
                    names.add(char)
                    break
            taken |= names
        return shorts


def _timeout(what: str) -> Option:
    return Option("timeout", what)


COMMANDS: tuple[Command, ...] = (
    Command(
        "install",
        "lifecycle:install",
        """Build the pinned Dolt into the cache (skipped when already built).

        Says which dolt `start` will run when it is not this build (dolt.binary, or a dolt on PATH).
        Examples:
          gt-dolt install
          gt-dolt install --bd --gt # also build beads' bd and Gas Town's gt, which the tests drive
        """,
        (
            Option("bd", "Also build beads' bd (v1.0.0) into the cache", flag=True),
            Option("gt", "Also build Gas Town's gt (v1.0.0) into the cache", flag=True),
        ),
    ),
    Command(
        "start",
        "lifecycle:start",
        """Start the server and return once it answers SQL and serves every rig (no-op when running).

        Examples:
          gt-dolt start
          gt-dolt start --port 3308 --timeout 120
        """,
        (_timeout("Seconds to wait for the server to answer (default: dolt.start_timeout, 60)"), Option("port", PORT)),
    ),
    Command(
        "stop",
        "lifecycle:stop",
        """Stop this town's server, ours or started by hand (no-op when stopped).

        Waits for busy clients first (up to dolt.drain_timeout), then SIGTERM; SIGKILL only after
        --timeout.  Examples:
          gt-dolt stop
          gt-dolt stop --force      # do not wait for clients
        """,
        (
            _timeout("Seconds to wait after SIGTERM before SIGKILL (default: dolt.stop_timeout, 30)"),
            Option("port", PORT),
            Option("force", "Skip waiting for busy clients to finish", flag=True),
        ),
    ),
    Command(
        "restart",
        "lifecycle:restart",
        """Stop the server if it runs, then start it; refuses before stopping if the start would fail.

        Examples:
          gt-dolt restart
          gt-dolt restart --port 3308   # move the town to another port (gt follows: config.yaml)
        """,
        (
            _timeout("Seconds to wait for the server to answer after the restart"),
            Option("port", PORT),
            Option("force", "Skip waiting for busy clients to finish", flag=True),
        ),
    ),
    Command(
        "status",
        "lifecycle:status",
        """Show whether the server runs: exit 0 running, 1 stale pid file, 3 stopped, 4 no town, 6 refused.

        Also what `gt-dolt` alone runs.  Examples:
          gt-dolt status
          gt-dolt status --json
        """,
        (
            Option("json_", 'Print one JSON object (errors too: {"error": ..., "exit_code": ...})', flag=True),
            Option("port", PORT),
        ),
        default=True,
    ),
    Command(
        "logs",
        "console:logs",
        """Show the end of daemon/dolt.log; -f follows it across truncation and rotation.

        Examples:
          gt-dolt logs -n 100
          gt-dolt logs -f           # Ctrl-C ends
          gt-dolt logs --rotate     # compress to dolt.log.1.gz and start afresh
        """,
        (
            Option("n", "How many lines from the end (default 50)"),
            Option("follow", "Keep printing new lines; Ctrl-C ends", flag=True),
            Option("rotate", "Compress the log into dolt.log.1.gz (keeping dolt.log_keep) and truncate it", flag=True),
        ),
    ),
    Command(
        "sql",
        "console:sql",
        """An SQL shell: Dolt's client against the server, or embedded dolt sql when it is down.

        Both start in --rig, else hq, else the first rig (said on stderr).  Examples:
          gt-dolt sql -q 'SELECT COUNT(*) FROM issues'
          echo 'SHOW TABLES' | gt-dolt sql --rig gastown
        """,
        (
            Option("rig", "Database to use (default: hq, else the first rig)"),
            Option("query", "Run this one query, print the result and exit (non-zero on an SQL error)"),
        ),
    ),
    Command(
        "list",
        "rigs:list_rigs",
        """List the rig databases in .dolt-data, whether the server serves them, and whose beads name them.

        Examples:
          gt-dolt list
          gt-dolt list --json
        """,
        (Option("json_", "Print a JSON list of {name, path, served, linked, beads}", flag=True),),
    ),
    Command(
        "init-rig",
        "rigs:init_rig",
        """Create a rig database (through the server when it runs, so it is served at once).

        Examples:
          gt-dolt init-rig gastown
        """,
        (Option("name", "Rig name: letters, digits, _ and -, up to 64", positional=True),),
    ),
    Command(
        "migrate",
        "rigs:migrate",
        """Move databases from the old .beads/dolt/beads layout into .dolt-data/<rig>.

        Examples:
          gt-dolt migrate --dry-run
          gt-dolt stop && gt-dolt migrate && gt-dolt start
        """,
        (Option("dry_run", "Show the plan, with sizes; change nothing", flag=True),),
    ),
    Command(
        "cleanup",
        "repair:cleanup",
        """Set aside databases in .dolt-data that no rig's beads name: never deletes data (--yes to act).

        An orphan as dolt init left it is removed; any other is moved to .dolt-backup/orphans/,
        from where restore serves it again.  Needs the server stopped.  Examples:
          gt-dolt cleanup --dry-run
          gt-dolt stop && gt-dolt cleanup --yes && gt-dolt start
        """,
        (
            Option("yes", "Do it (without it, only say what would be done)", flag=True),
            Option("dry_run", "Say what would be done and why; change nothing", flag=True),
            Option("json_", "Print one JSON object: {done, orphans: [{name, action, why, destination}]}", flag=True),
        ),
    ),
    Command(
        "init",
        "repair:init",
        """Repair rigs whose beads use the server but whose database is missing: migrate or create it.

        Migrates the rig's data where its beads dir still holds it, else creates the database;
        rigs that have theirs are not touched (running it twice changes nothing).  Examples:
          gt-dolt init --dry-run
          gt-dolt init
        """,
        (
            Option("dry_run", "Say what would be repaired and how; change nothing", flag=True),
            Option("json_", "Print one JSON object: {done, rigs: [{rig, database, action}]}", flag=True),
        ),
    ),
    Command(
        "rollback",
        "repair:rollback",
        """Undo a migrate from the dated backup it kept (the newest, or --backup): bd reads its data again.

        Stops the server, puts each rig's database back in its beads dir, restores the beads
        metadata, sets the migrated copies aside in .dolt-backup/orphans/ and checks each rig as
        bd reads it.  Refuses when a rig changed since the migration, unless --force.  Examples:
          gt-dolt rollback --list
          gt-dolt rollback --dry-run
          gt-dolt rollback --backup 20261202T180140Z
        """,
        (
            Option("backup", "The backup (a folder name in .dolt-backup/migrations; default: the newest)"),
            Option("force", "Roll back even rigs changed since (their changes stay in the set-aside copy)", flag=True),
            Option("dry_run", "Say what would be put back; change nothing", flag=True),
            Option("list_", "List the migration backups, newest first", flag=True),
            Option("json_", "Print one JSON object", flag=True),
        ),
    ),
    Command(
        "doctor",
        "doctor:doctor",
        """Check the binary, port, run files, servers, rigs, beads, health and backups (exit 1 on a failure).

        Examples:
          gt-dolt doctor
          gt-dolt doctor --fix      # only the safe fixes: the run files and beads metadata
        """,
        (
            Option("fix", "Apply the safe fixes first (run files); nothing else changes", flag=True),
            Option("port", PORT),
        ),
    ),
    Command(
        "fix-metadata",
        "beads:fix_metadata",
        """Point every rig's beads (metadata.json, dolt-server.port) at the town's server.

        Examples:
          gt-dolt fix-metadata --dry-run
          gt-dolt fix-metadata
        """,
        (Option("dry_run", "Print what would change; write nothing", flag=True),),
    ),
    Command(
        "stop-rogue",
        "beads:stop_rogue",
        """Stop Dolt servers that serve a folder inside this town other than .dolt-data (never data).

        Examples:
          gt-dolt stop-rogue            # every rogue server of this town
          gt-dolt stop-rogue --pid 4242
        """,
        (Option("pid", "Only this process (it must be a rogue server of this town)"),),
    ),
    Command(
        "watch",
        "operations:watch",
        """Keep the server running: check every interval, restart with backoff, log to daemon/dolt-watch.log.

        Runs in the foreground (tmux, systemd, a terminal); Ctrl-C ends the watch and leaves the
        server running.  Examples:
          gt-dolt watch
          gt-dolt watch --once      # one check; exit code as status (for cron)
        """,
        (
            Option("interval", "Seconds between checks (default: dolt.watch_interval, 10)"),
            Option("once", "Check once, restart if needed, exit with the status code", flag=True),
        ),
    ),
    Command(
        "backup",
        "operations:backup",
        """Sync each rig (or one) to a Dolt backup: file://<town>/.dolt-backup/<rig> by default.

        Examples:
          gt-dolt backup
          gt-dolt backup --rig hq --to file:///mnt/backups/hq
        """,
        (
            Option("rig", "Only this rig"),
            Option("to", "Any URL Dolt accepts (one rig); default file://<town>/.dolt-backup/<rig>"),
        ),
    ),
    Command(
        "restore",
        "operations:restore",
        """Restore a rig from a Dolt backup into .dolt-data (refused when that rig exists).

        Examples:
          gt-dolt restore --rig hq
          gt-dolt restore --rig hq --as hq_copy --from file:///mnt/backups/hq
          gt-dolt restore --rig old --from file://$PWD/.dolt-backup/orphans/old-20261202T180140Z
        """,
        (
            Option("rig", "The rig whose backup to restore"),
            Option("from_", "Backup URL (default: file://<town>/.dolt-backup/<rig>)"),
            Option("as_", "Restore under this rig name (default: the same name)"),
        ),
    ),
    Command(
        "cluster-status",
        "cluster:cluster_status",
        """Show this server's cluster role and epoch, and replication to each standby.

        Examples:
          gt-dolt cluster-status
          gt-dolt cluster-status --json
        """,
        (Option("json_", "Print one JSON object", flag=True),),
    ),
    Command(
        "failover",
        "cluster:failover",
        """On a standby: take over as primary at a higher epoch, once the old primary is demoted or gone.

        Refuses while the primary is alive and not demoted, or while this standby lags; --force
        accepts the loss and says what it loses.  Examples:
          gt-dolt failover
          gt-dolt failover --force
        """,
        (Option("force", "Take over although writes may be lost (says which)", flag=True),),
    ),
    Command(
        "demote",
        "cluster:demote",
        """On a primary: become a standby at a higher epoch (waits for the standbys to catch up).

        Examples:
          gt-dolt demote
          gt-dolt demote --epoch 7
        """,
        (Option("epoch", "The epoch to demote at (default: the current one plus one)"),),
    ),
)

BY_NAME = {command.name: command for command in COMMANDS}
DEFAULT = next(command for command in COMMANDS if command.default)
