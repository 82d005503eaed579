// The app's long jobs: indexing, a model download, a training run. Each
// kind runs one at a time and outlives the page that started it, so any
// page can show it and coming back to a page shows it again. This is the
// one place their state lives.
import { invoke, channel, newJobId, cancelJob } from "./ipc.js";

class JobSlot {
  constructor(kind) {
    this.kind = kind;
    this.id = null; // the running job's id, or null
    this.stopping = false; // Stop was pressed and the job has not ended yet
    this.state = {}; // what the page shows of the running job
    this.listeners = new Set();
  }

  get running() {
    return this.id !== null;
  }

  /** Calls `f(event)` on every change; the page on screen owns it. */
  listen(f) {
    this.listeners.add(f);
  }

  notify(event) {
    for (const f of this.listeners) f(event);
  }

  /**
   * Runs `command` with `args`, a fresh job id and an event channel.
   * `state` starts the job's shown state and `onEvent(e, state)` updates
   * it. Resolves to the command's result, rejects with its error; either
   * way the slot is free again when it settles.
   */
  async run(command, args, { state = {}, onEvent = () => {} } = {}) {
    if (this.id) throw new Error(`a ${this.kind} job is already running`);
    this.id = newJobId(this.kind);
    this.stopping = false;
    this.state = state;
    this.notify();
    try {
      return await invoke(command, {
        ...args,
        job: this.id,
        onEvent: channel((e) => {
          onEvent(e, this.state);
          this.notify(e);
        }),
      });
    } finally {
      this.id = null;
      this.stopping = false;
      this.notify();
    }
  }

  /** Asks the running job to stop; it ends at its next safe point. */
  cancel() {
    if (!this.id) return Promise.resolve(false);
    this.stopping = true;
    this.notify();
    return cancelJob(this.id);
  }
}

export const jobs = {
  indexing: new JobSlot("index"),
  download: new JobSlot("download"),
  training: new JobSlot("train"),
  // The folder watch: runs while the app is open (unless turned off) and
  // asks for a rescan when files change.
  watch: new JobSlot("watch"),
};

/** The page on screen is leaving: its listeners go with it. */
export function leavePage() {
  for (const slot of Object.values(jobs)) slot.listeners.clear();
}
