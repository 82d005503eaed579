// The only module that talks to the shell. Commands return promises that
// reject with {code, message}; long jobs stream events over a channel and
// are cancelled by the job id they were started with.

const tauri = () => {
  const t = window.__TAURI__;
  if (!t || !t.core) throw new Error("not running inside ExSearch Desktop (no Tauri IPC)");
  return t.core;
};

export function invoke(cmd, args = {}) {
  return tauri().invoke(cmd, args);
}

/** A channel whose messages go to `onMessage`. */
export function channel(onMessage) {
  const ch = new (tauri().Channel)();
  ch.onmessage = onMessage;
  return ch;
}

let jobCounter = 0;
export function newJobId(kind) {
  jobCounter += 1;
  return `${kind}-${Date.now().toString(36)}-${jobCounter}`;
}

export function cancelJob(job) {
  return invoke("job_cancel", { job });
}

/** A readable message for any rejection (ours carry {code, message}). */
export function errorMessage(e) {
  if (e && typeof e === "object" && "message" in e) return e.message;
  return String(e);
}
