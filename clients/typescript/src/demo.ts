// A Node IDE written only against the types quicktype generates from docs/protocol.schema.json.
// It opens a session, sends one user message, runs each tool call on its workspace with its
// own implementations, and prints one JSON line per frame, then a summary line.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, resolve, sep } from "node:path";
import WebSocket from "ws";
import {
  Convert,
  ErrorCode,
  ReadFileOutput,
  ToolCall,
  ToolName,
  ToolResult,
  WriteFileOutput,
  GitDiffOutput,
  ApplyPatchOutput,
} from "../generated/protocol";

const IMPLEMENTED: ToolName[] = ["read_file", "write_file", "git.diff", "apply_patch"];

interface Options {
  url: string;
  token: string;
  workspace: string;
  prompt: string;
}

function options(argv: string[]): Options {
  const value = (flag: string): string => {
    const index = argv.indexOf(flag);
    if (index < 0 || index + 1 >= argv.length) {
      throw new Error(`missing ${flag}; usage: demo --url WS_URL --token TOKEN --workspace DIR [--prompt TEXT]`);
    }
    return argv[index + 1];
  };
  const prompt = argv.includes("--prompt") ? value("--prompt") : "Add logging to src/auth.js";
  return { url: value("--url"), token: value("--token"), workspace: resolve(value("--workspace")), prompt };
}

function inside(workspace: string, path: string): string {
  const full = resolve(workspace, path);
  if (full !== workspace && !full.startsWith(workspace + sep)) {
    throw new ToolFailure("outside_workspace", `${path} is outside the workspace`);
  }
  return full;
}

class ToolFailure extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

function git(workspace: string, args: string[], input?: string): string {
  return execFileSync("git", ["-C", workspace, ...args], { input, encoding: "utf8" });
}

type Output = ReadFileOutput | WriteFileOutput | GitDiffOutput | ApplyPatchOutput;

function runTool(workspace: string, call: ToolCall): Output {
  const text = JSON.stringify(call.arguments);
  switch (call.tool) {
    case "read_file": {
      const args = Convert.toReadFileArguments(text);
      try {
        return { content: readFileSync(inside(workspace, args.path), "utf8") };
      } catch (error) {
        if (error instanceof ToolFailure) throw error;
        throw new ToolFailure("not_found", `${args.path}: no such file`);
      }
    }
    case "write_file": {
      const args = Convert.toWriteFileArguments(text);
      const target = inside(workspace, args.path);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, args.content, "utf8");
      return { bytes_written: Buffer.byteLength(args.content, "utf8") };
    }
    case "git.diff": {
      const args = Convert.toGitDiffArguments(text);
      const extra = args.staged ? ["--cached"] : [];
      const paths = args.path ? ["--", args.path] : [];
      return { diff: git(workspace, ["diff", "--no-ext-diff", ...extra, ...paths]) };
    }
    case "apply_patch": {
      const args = Convert.toApplyPatchArguments(text);
      try {
        git(workspace, ["apply", "--check", "-"], args.diff);
        const files = git(workspace, ["apply", "--numstat", "-"], args.diff)
          .split("\n")
          .filter((line) => line.length > 0)
          .map((line) => line.split("\t")[2]);
        git(workspace, ["apply", "-"], args.diff);
        return { files };
      } catch (error) {
        throw new ToolFailure("patch_failed", `the diff does not apply: ${String(error)}`);
      }
    }
    default:
      // Not in this client's `hello` capabilities, so the server never asks for it.
      throw new ToolFailure("unknown_tool", `${call.tool} is not implemented by this client`);
  }
}

function answer(workspace: string, call: ToolCall): ToolResult {
  try {
    return { type: "tool_result", call_id: call.call_id, ok: true, output: runTool(workspace, call), id: null, error: null };
  } catch (error) {
    const failure = error instanceof ToolFailure ? error : new ToolFailure("tool_failed", String(error));
    return { type: "tool_result", call_id: call.call_id, ok: false, error: { code: failure.code, message: failure.message }, id: null, output: null };
  }
}

function main(): void {
  const opts = options(process.argv.slice(2));
  const socket = new WebSocket(opts.url, { headers: { Authorization: `Bearer ${opts.token}` } });
  const toolsRun: string[] = [];
  let answerText = "";
  let started = false;
  let exitCode = 1;
  const print = (line: object): void => {
    process.stdout.write(JSON.stringify(line) + "\n");
  };

  socket.on("open", () => {
    socket.send(
      Convert.helloToJson({
        type: "hello",
        protocol: 1,
        id: null,
        session_id: null,
        last_seq: null,
        client: { name: "ts-demo", version: "1.0" },
        capabilities: { tools: IMPLEMENTED, features: null },
      }),
    );
  });
  socket.on("message", (data: WebSocket.RawData) => {
    const text = data.toString();
    const kind = (JSON.parse(text) as { type?: unknown }).type;
    switch (kind) {
      case "session": {
        const session = Convert.toSession(text);
        print({ frame: "session", tools: session.tools, features: session.features });
        socket.send(Convert.userMessageToJson({ type: "user_message", content: opts.prompt, id: "m1" }));
        break;
      }
      case "tool_call": {
        const call = Convert.toToolCall(text);
        toolsRun.push(call.tool);
        print({ frame: "tool_call", seq: call.seq, tool: call.tool });
        socket.send(Convert.toolResultToJson(answer(opts.workspace, call)));
        break;
      }
      case "agent_delta": {
        Convert.toAgentDelta(text);
        break;
      }
      case "context": {
        const context = Convert.toContextReport(text);
        print({ frame: "context", seq: context.seq, tokens: context.tokens, window: context.window });
        break;
      }
      case "agent_message": {
        const message = Convert.toAgentMessage(text);
        answerText = message.content;
        print({ frame: "agent_message", seq: message.seq });
        break;
      }
      case "state": {
        const state = Convert.toStateChanged(text);
        print({ frame: "state", seq: state.seq, state: state.state });
        started = started || state.state === "streaming";
        if (started && (state.state === "done" || state.state === "error" || state.state === "idle")) {
          exitCode = state.state === "done" ? 0 : 1;
          print({ summary: true, tools_run: toolsRun, final_state: state.state, answer: answerText });
          socket.close(1000);
        }
        break;
      }
      case "error": {
        const error = Convert.toErrorEvent(text);
        print({ frame: "error", code: error.code, source: error.source, message: error.message });
        break;
      }
      default:
        print({ frame: "unknown", type: String(kind) });
    }
  });
  socket.on("close", () => process.exit(exitCode));
  socket.on("error", (error: Error) => {
    process.stderr.write(`connection failed: ${error.message}\n`);
    process.exit(2);
  });
}

main();
