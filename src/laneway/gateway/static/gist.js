// One readable line per event for the lanes: what a hook event says, in
// words, instead of its raw payload JSON (the detail pane keeps the JSON).

const clip = (text, n = 120) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function toolLine(payload) {
  const input = payload.tool_input && typeof payload.tool_input === "object" ? payload.tool_input : {};
  const what = input.command ?? input.file_path ?? input.path ?? input.pattern ?? input.url ?? input.description;
  return what === undefined ? String(payload.tool_name) : `${payload.tool_name}: ${what}`;
}

// The common Claude Code hook types, by what a person wants to know of them.
const BY_TYPE = {
  PreToolUse: (p) => (p.tool_name ? toolLine(p) : undefined),
  PostToolUse: (p) => (p.tool_name ? `${toolLine(p)}${p.tool_response?.error ? " (failed)" : ""}` : undefined),
  UserPromptSubmit: (p) => (p.prompt !== undefined ? `prompt: ${p.prompt}` : undefined),
  Notification: (p) => p.message,
  Stop: (p) => (p.summary ? `stopped: ${p.summary}` : `stopped${p.stop_hook_active ? " (stop hook active)" : ""}`),
  SubagentStop: (p) => `subagent ${p.subagent ?? p.agent_type ?? ""} finished${p.summary ? `: ${p.summary}` : ""}`.replace("  ", " "),
  SessionStart: (p) => `session started${p.source ? ` (${p.source})` : ""}`,
  SessionEnd: (p) => `session ended${p.reason ? ` (${p.reason})` : ""}`,
  AssistantReply: (p) => (typeof p.text === "string" ? `reply: ${p.text}` : undefined),
  PreCompact: (p) => `compacting context${p.trigger ? ` (${p.trigger})` : ""}${p.context_tokens ? `, ${p.context_tokens.toLocaleString()} tokens` : ""}`,
};

export function gist(type, payload) {
  if (payload === null || payload === undefined) return "";
  if (typeof payload !== "object") return clip(String(payload));
  const byType = BY_TYPE[type];
  const line = byType ? byType(payload) : undefined;
  if (line !== undefined && line !== null) return clip(String(line));
  const text = payload.tool_name ?? payload.prompt ?? payload.message ?? payload.summary ?? payload.subagent ?? payload.trigger ?? payload.source;
  if (text !== undefined) return clip(String(text));
  // Unknown shape: its fields, not a wall of JSON.
  const keys = Object.keys(payload);
  return keys.length ? clip(`{${keys.join(", ")}}`) : "{}";
}
