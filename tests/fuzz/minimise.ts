// Shrinks a failing action list to a short one that still fails the same way (same failure
// kind): delta debugging, removing ever smaller chunks, then single actions, until no single
// removal keeps the failure. Each try is a full run on a fresh machine, so it stays exact.
import type { Action } from "./actions";
import { runActions } from "./run-case";

export interface Minimised {
  actions: Action[];
  kind: string;
  message: string;
  tries: number;
}

export async function minimise(actions: Action[], kind: string, maxTries = 2000): Promise<Minimised> {
  let current = actions.slice();
  let message = "";
  let tries = 0;
  const stillFails = async (candidate: Action[]): Promise<boolean> => {
    tries++;
    const result = await runActions(candidate);
    if (result.failure && result.failure.kind === kind) {
      message = result.failure.message;
      return true;
    }
    return false;
  };
  // The failure may have happened before the end: everything after the failing action goes first.
  const first = await runActions(current);
  tries++;
  if (first.failure) {
    message = first.failure.message;
    if (first.failure.actionIndex >= 0 && first.failure.actionIndex + 1 < current.length) {
      const cut = current.slice(0, first.failure.actionIndex + 1);
      if (await stillFails(cut)) current = cut;
    }
  }
  let chunk = Math.max(1, Math.floor(current.length / 2));
  while (tries < maxTries) {
    let removedAny = false;
    for (let start = 0; start < current.length && tries < maxTries; ) {
      const candidate = current.slice(0, start).concat(current.slice(start + chunk));
      if (candidate.length < current.length && (await stillFails(candidate))) {
        current = candidate;
        removedAny = true;
      } else {
        start += chunk;
      }
    }
    if (chunk === 1 && !removedAny) break;
    if (!removedAny) chunk = Math.max(1, Math.floor(chunk / 2));
  }
  return { actions: current, kind, message, tries };
}
