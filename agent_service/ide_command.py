"""The reference IDE: connect to the gateway and run the agent's tools on a workspace directory.

With a message, it runs that one turn and exits: 0 when the turn ends `done`, 1 when it ends
otherwise (`error`, cancelled, refused), 2 when it cannot start (the gateway is unreachable or
refuses the token, the workspace is not a directory), 130 on Ctrl-C. Without a message it is an interactive prompt: each line is a turn;
Ctrl-C during a turn cancels it, Ctrl-D or Ctrl-C at the prompt quits.

The agent's streamed answer is printed as it arrives, with one line per tool call and its
outcome. At a terminal (stdin and stdout TTYs, NO_COLOR unset) the prompt is a line editor with
history, a spinner shows while the model or a tool works, every change is shown as a coloured
diff, and /help, /status, /diff, /new, /quit are handled locally. --resume ID or --continue
goes on with an earlier session. Tools are confined to the workspace; see docs/ide-client.md.
/undo and /approval are described below.

The user stays in control. --approval says what a write (write_file, apply_patch) needs: `ask`
(the default at a terminal) shows each change as a diff before anything is written and asks
[y]es / [a]lways / [n]o (+ a reason the agent gets); `auto-edit` (the default when piped) writes
without asking; `read-only` offers the agent no write tool. `/approval MODE` changes it during
the session. Before it changes a file the IDE keeps a checkpoint of it (in the workspace's
.agent-service/checkpoints, ignored by git; the git index and history are never touched):
`/undo` puts back the files of the last turn, `/undo t3` those of turn t3 and every later one,
and the agent is told; a file you edited since is not overwritten unless `/undo --force`.
Writes are refused in a workspace that is not in a git repository unless --allow-non-git.
Piped, `--approval ask` reads each answer as a line of stdin.

With --replay ID (and --db, the transcript database), no workspace is needed: the recorded
session's messages are sent again, turn by turn, tool calls are answered with the recorded
results, and every event is compared with the recorded one (session ids aside). Exit 0 when
the whole session matched, 1 at the first difference (printed), 2 when it cannot start.
See docs/transcripts.md, "Live replay".
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console

from agent_service.ide_replay import (
    VOLATILE_FIELDS,
    EventCheck,
    IdeRecording,
    RecordedTools,
    read_ide_recording,
    replay_turns,
)
from agent_service.options import add_number, add_token, env
from agent_service.transcript_flags import add_db_flag, open_db
from ide_client import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_URL,
    HISTORY_FILE,
    QUESTION,
    ApprovalAnswer,
    CheckpointStore,
    ConsoleDisplay,
    IdeClient,
    IdeClientError,
    RecentSession,
    RecentSessions,
    ReplayError,
    ToolRunner,
    Workspace,
    create_sample_workspace,
    describe_call,
    find_repository,
    preview,
    read_answer,
    skip_history,
    state_dir,
    terminal,
)
from ide_client.terminal import Command, Invocation, Unknown, parse_line
from orchestrator import CodecError
from service_logging import configure_logging
from transcripts import TranscriptError
from wire import ApprovalMode, ApprovalRequest, Decision, SessionState

EXIT_DONE = 0
EXIT_TURN_FAILED = 1
EXIT_CANNOT_START = 2
EXIT_INTERRUPTED = 130
EXIT_REPLAY_DIVERGED = 1
PROMPT = "> "
DEFAULT_REPLAY_TURN_TIMEOUT = 300.0
PLAIN_COMMANDS = (
    "agent-service ide: slash commands need a terminal (stdin and stdout a TTY, NO_COLOR unset); "
    "here only /quit (or quit, exit) works, and nothing was sent"
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `agent-service ide`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "message", nargs="?", help="run this one turn and exit (omit for an interactive prompt)"
    )
    parser.add_argument(
        "--workspace",
        type=Path,
        default=env("AGENT_WORKSPACE"),
        help="directory the tools work in; nothing outside it is read or written "
        "(env AGENT_WORKSPACE; required unless --replay)",
    )
    parser.add_argument(
        "--url",
        default=env("AGENT_GATEWAY_URL", DEFAULT_URL),
        help="the gateway's WebSocket endpoint (env AGENT_GATEWAY_URL, default %(default)s)",
    )
    add_token(parser, unset_means="the command stops and asks for one")
    add_number(
        parser, "max-file-bytes", DEFAULT_MAX_FILE_BYTES, "largest file the tools read or write"
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        metavar="SESSION_ID",
        help="go on with this session (the gateway keeps it for its grace period)",
    )
    resume.add_argument(
        "--continue",
        dest="continue_last",
        action="store_true",
        help="go on with the last session used in this workspace (remembered in "
        "$XDG_STATE_HOME/agent-service, by default ~/.local/state/agent-service)",
    )
    parser.add_argument(
        "--approval",
        default=env("AGENT_APPROVAL"),
        metavar="MODE",
        help="what a write needs: `ask` (show the diff, ask y/a/n; the default at a terminal), "
        "`auto-edit` (write without asking; the default when piped), `read-only` (the agent "
        "gets no write tool) (env AGENT_APPROVAL)",
    )
    parser.add_argument(
        "--allow-non-git",
        action="store_true",
        default=env("AGENT_ALLOW_NON_GIT") in ("1", "true", "yes"),
        help="let the agent write in a workspace that is not in a git repository (without "
        "git, only /undo can take its changes back; env AGENT_ALLOW_NON_GIT=1)",
    )
    parser.add_argument(
        "--create-sample",
        action="store_true",
        help="first create a sample git workspace (src/auth.js) in the missing or empty directory",
    )
    parser.add_argument(
        "--replay",
        metavar="ID",
        help="re-run the recorded session ID: send its messages, answer tools from the "
        "recording, compare every event (needs --db; the stack serves the recorded model "
        "with `--replay DB --replay-session ID`)",
    )
    add_db_flag(parser)
    add_number(
        parser,
        "replay-turn-timeout",
        DEFAULT_REPLAY_TURN_TIMEOUT,
        "longest a replayed turn may take to come to rest, in seconds",
    )


def run(args: argparse.Namespace) -> int:
    """Run one turn or the interactive prompt; the exit code says how it went."""
    configure_logging("ide", level="WARNING")
    if not args.token:
        return _fail("no token: pass --token or set AGENT_TOKEN (`agent-service up` prints one)")
    if args.replay is not None:
        if args.message is not None:
            return _fail("--replay sends the recorded messages; give no message")
        return _run_replay(args)
    if args.workspace is None:
        return _fail("--workspace DIR is required (or --replay ID)")
    try:
        if args.create_sample:
            create_sample_workspace(args.workspace)
        workspace = Workspace(args.workspace, max_file_bytes=args.max_file_bytes)
    except (IdeClientError, OSError) as exc:
        return _fail(str(exc))
    at_terminal = terminal.wanted(sys.stdin, sys.stdout)
    approval = _approval_mode(args.approval, at_terminal)
    if approval is None:
        return _fail(f"--approval {args.approval!r}: use one of read-only, ask, auto-edit")
    writes = approval is not ApprovalMode.READ_ONLY and not args.allow_non_git
    if writes and find_repository(workspace.root) is None:
        return _fail(
            f"{workspace.root} is not in a git repository, so the agent's changes could "
            "not be reviewed or reverted with git; run `git init` there, or pass "
            "--allow-non-git (or --approval read-only)"
        )
    recent = RecentSessions()
    resumed = _session_to_resume(args, recent)
    if args.continue_last and resumed is None:
        return _fail(f"no session to continue in {args.workspace} (start one without --continue)")
    session_id, last_seq = (resumed.session_id, resumed.last_seq) if resumed else (None, 0)
    checkpoints = CheckpointStore(workspace)
    if at_terminal:
        return _run_terminal(args, workspace, checkpoints, approval, recent, session_id, last_seq)
    lines = _StdinLines()
    client = IdeClient(
        args.url,
        args.token,
        ToolRunner(workspace, checkpoints=checkpoints),
        display=ConsoleDisplay(sys.stdout, show_diffs=True),
        session_id=session_id,
        last_seq=last_seq,
        on_approval=_PlainApprovals(workspace, lines).ask if approval is ApprovalMode.ASK else None,
        approval=approval,
        checkpoints=checkpoints,
    )
    try:
        if args.message is not None:
            return asyncio.run(_one_turn(client, args.message))
        return asyncio.run(_interactive(client, lines))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except IdeClientError as exc:
        return _fail(exc.message)
    finally:
        if client.session_id is not None:
            recent.remember(args.workspace, RecentSession(client.session_id, client.last_seq))


def _session_to_resume(args: argparse.Namespace, recent: RecentSessions) -> RecentSession | None:
    """The session `--resume ID` or `--continue` names, with the last event seen of it."""
    if args.resume is not None:
        return recent.find(args.resume) or RecentSession(args.resume, 0)
    if args.continue_last:
        return recent.last(args.workspace)
    return None


def _approval_mode(asked: str | None, at_terminal: bool) -> ApprovalMode | None:
    """The mode `--approval` names (None: no such mode); by default `ask` at a terminal,
    where someone can answer, else `auto-edit`."""
    if asked is None:
        return ApprovalMode.ASK if at_terminal else ApprovalMode.AUTO_EDIT
    try:
        return ApprovalMode(asked)
    except ValueError:
        return None


def _run_terminal(
    args: argparse.Namespace,
    workspace: Workspace,
    checkpoints: CheckpointStore,
    approval: ApprovalMode,
    recent: RecentSessions,
    session_id: str | None,
    last_seq: int,
) -> int:
    """The same, drawn for a person at a terminal (spinner, colours, line editor)."""
    changes = terminal.ChangeRecorder(ToolRunner(workspace, checkpoints=checkpoints))
    view = terminal.TerminalDisplay(Console(highlight=False, emoji=False), changes)
    approvals = terminal.TerminalApprovals(view, workspace)
    client = IdeClient(
        args.url,
        args.token,
        changes,
        display=view,
        on_event=view.on_event,
        session_id=session_id,
        last_seq=last_seq,
        on_approval=approvals.ask,
        approval=approval,
        checkpoints=checkpoints,
    )
    app = terminal.TerminalApp(
        client, view, changes, approvals, args.workspace, recent, state_dir() / HISTORY_FILE
    )
    try:
        if args.message is None:
            asyncio.run(app.run_prompt())
            return EXIT_DONE
        turn = asyncio.run(app.run_message(args.message))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
    except IdeClientError as exc:
        return _fail(exc.message)
    finally:
        view.stop()
    if app.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_DONE if turn.state is SessionState.DONE else EXIT_TURN_FAILED


async def _one_turn(client: IdeClient, message: str) -> int:
    async with client:
        await skip_history(client)
        turn = await client.run_turn(message)
    return EXIT_DONE if turn.state is SessionState.DONE else EXIT_TURN_FAILED


async def _interactive(client: IdeClient, lines: _StdinLines) -> int:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    cancelling: set[asyncio.Task[None]] = set()

    def on_interrupt() -> None:
        """Ctrl-C: cancel the running turn; again during the same turn: quit; at the prompt: quit."""
        if not client.turn_running:
            lines.stop()
        elif cancelling:
            assert main is not None
            main.cancel()
        else:
            cancelling.add(loop.create_task(client.cancel()))

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        async with client:
            await skip_history(client)
            session = client.session
            assert session is not None
            print(
                f"Session {session.session_id}. Type a message; Ctrl-D quits.",
                file=sys.stderr,
            )
            while (line := await lines.next(PROMPT)) is not None:
                parsed = parse_line(line)
                if isinstance(parsed, Invocation) and parsed.command is Command.QUIT:
                    break
                if isinstance(parsed, Invocation | Unknown):
                    print(PLAIN_COMMANDS, file=sys.stderr)
                elif parsed.strip():
                    cancelling.clear()
                    await client.run_turn(parsed.strip())
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    print(file=sys.stderr)
    return EXIT_DONE


class _StdinLines:
    """Lines typed at the prompt (or answers to approvals), read by a daemon thread so the
    event loop (and the socket's pings) keep running, and so that quitting never waits for a
    blocked read. The thread starts at the first `next`: stdin is not read before."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def next(self, prompt: str) -> str | None:
        """The next line, or None at end of input or after `stop()`."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            threading.Thread(target=self._read, name="stdin", daemon=True).start()
        print(prompt, end="", file=sys.stderr, flush=True)
        return await self._queue.get()

    def stop(self) -> None:
        """End the prompt: `next` returns None."""
        self._queue.put_nowait(None)

    def _read(self) -> None:
        for line in sys.stdin:
            if not self._push(line.rstrip("\n")):
                return
        self._push(None)

    def _push(self, line: str | None) -> bool:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line)
        except RuntimeError:
            return False
        return True


class _PlainApprovals:
    """Approvals when piped: the change and the question on stdout, the answer a stdin line
    (end of input rejects)."""

    def __init__(self, workspace: Workspace, lines: _StdinLines) -> None:
        self.workspace = workspace
        self.lines = lines

    async def ask(self, request: ApprovalRequest) -> ApprovalAnswer:
        shown = await asyncio.to_thread(preview, self.workspace, request)
        what = describe_call(request.tool, request.arguments)
        print(f"[approval] {what} wants to {shown.summary}", flush=True)
        if shown.diff is not None:
            print(shown.diff, end="" if shown.diff.endswith("\n") else "\n", flush=True)
        while True:
            line = await self.lines.next(f"Allow? {QUESTION}: ")
            if line is None:
                return ApprovalAnswer(Decision.REJECT, "No answer came (end of input).")
            answer = read_answer(line)
            if answer is not None:
                return answer
            print("Answer y, a or n (n may be followed by a reason).", file=sys.stderr)


def _run_replay(args: argparse.Namespace) -> int:
    try:
        store = open_db(args)
        try:
            recording = read_ide_recording(store, args.replay)
        finally:
            store.close()
    except (TranscriptError, CodecError, ReplayError) as exc:
        return _fail(f"{exc.message} [{exc.code}]")
    check = EventCheck(recording)
    client = IdeClient(
        args.url,
        args.token,
        RecordedTools(recording),
        display=ConsoleDisplay(sys.stdout, show_diffs=True),
        on_event=check,
        implemented_tools=recording.tools,
    )
    try:
        asyncio.run(_replay(client, recording, check, args.replay_turn_timeout))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except ReplayError as exc:
        print(
            f"\nDIVERGED  live replay of {recording.session_id} as session {client.session_id} "
            f"({check.matched} of {len(recording.events)} events matched)\n{exc.message}"
        )
        return EXIT_REPLAY_DIVERGED
    except IdeClientError as exc:
        return _fail(exc.message)
    volatile = ", ".join(sorted(VOLATILE_FIELDS))
    print(
        f"\nok  live replay of {recording.session_id} as session {client.session_id}: "
        f"{check.matched} events match the recording ({volatile} aside)"
    )
    return EXIT_DONE


async def _replay(
    client: IdeClient, recording: IdeRecording, check: EventCheck, timeout: float
) -> None:
    async with client:
        await replay_turns(client, recording, check, timeout)


def _fail(message: str) -> int:
    print(f"agent-service ide: {message}", file=sys.stderr)
    return EXIT_CANNOT_START
