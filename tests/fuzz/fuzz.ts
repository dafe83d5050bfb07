// `make fuzz`: runs generated cases (tests/fuzz/actions.ts) on the simulated machine for
// FUZZ_SECONDS (default 60), case i with seed FUZZ_SEED + i, printing executions per second.
// On the first failure it minimises the case, writes build/fuzz/failure-<seed>.json (the seed, the
// failure and the shortest action list that still fails) and exits 1. The cases run in a child
// process that reports each seed before running it: a case that never returns (a loop the step
// budget of run-case.ts cannot see) is killed after HANG_SECONDS and written out as a hang.
//   node --import tsx tests/fuzz/fuzz.ts [--seconds S] [--seed N]
//   node --import tsx tests/fuzz/fuzz.ts --replay build/fuzz/failure-<seed>.json
import { fork } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { generateCase } from "./actions";
import { minimise } from "./minimise";
import { runActions } from "./run-case";

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

async function replay(path: string): Promise<number> {
  const saved = JSON.parse(readFileSync(path, "utf8"));
  const result = await runActions(saved.actions);
  if (result.failure) {
    console.log(`replay ${path}: FAILS: ${result.failure.message} (action ${result.failure.actionIndex})`);
    return 1;
  }
  console.log(`replay ${path}: passes (${saved.actions.length} actions)`);
  return 0;
}

const HANG_SECONDS = Number(process.env.FUZZ_HANG_SECONDS ?? 60);

// The parent: starts the child, and kills it (by its own pid) when a case stops reporting.
function watch(seconds: number, firstSeed: number): Promise<number> {
  console.log(`fuzz: seed=${firstSeed} seconds=${seconds}`);
  return new Promise((resolve) => {
    const child = fork(process.argv[1], ["--child", "--seconds", String(seconds), "--seed", String(firstSeed)], { execArgv: process.execArgv });
    let current = firstSeed;
    let lastBeat = Date.now();
    child.on("message", (message: { seed: number }) => {
      current = message.seed;
      lastBeat = Date.now();
    });
    const timer = setInterval(() => {
      if (Date.now() - lastBeat < HANG_SECONDS * 1000) return;
      clearInterval(timer);
      child.kill("SIGKILL");
      const c = generateCase(current);
      mkdirSync("build/fuzz", { recursive: true });
      const path = `build/fuzz/failure-${current}.json`;
      writeFileSync(path, JSON.stringify({ seed: current, firstSeed, chaos: c.chaos, kind: "hang", failure: `case did not finish within ${HANG_SECONDS} s`, originalActions: c.actions.length, actions: c.actions }, null, 1) + "\n");
      console.log(`fuzz: FAILURE seed=${current}: hang (no progress for ${HANG_SECONDS} s); reproducer ${path} (not minimised)`);
      resolve(1);
    }, 1000);
    child.on("exit", (code) => {
      clearInterval(timer);
      resolve(code ?? 1);
    });
  });
}

async function main(): Promise<number> {
  const replayPath = option("replay", "");
  if (replayPath) return replay(replayPath);
  const seconds = Number(option("seconds", process.env.FUZZ_SECONDS ?? "60"));
  const firstSeed = Number(option("seed", process.env.FUZZ_SEED ?? String(Date.now() % 1_000_000_000))) >>> 0;
  if (!process.argv.includes("--child")) return watch(seconds, firstSeed);
  const start = Date.now();
  let lastReport = start;
  let executions = 0;
  let actions = 0;
  let chaosCases = 0;
  let rejections = 0;
  let apiCalls = 0;
  let guestToHost = 0;
  for (let i = 0; (Date.now() - start) / 1000 < seconds; i++) {
    const seed = (firstSeed + i) >>> 0;
    process.send?.({ seed });
    const c = generateCase(seed);
    const result = await runActions(c.actions);
    executions++;
    actions += result.actionsRun;
    rejections += result.stats.rejections;
    apiCalls += result.stats.apiCalls;
    guestToHost += result.stats.guestToHostBytes;
    if (c.chaos) chaosCases++;
    if (result.failure) {
      const f = result.failure;
      console.log(`fuzz: FAILURE seed=${seed} after ${executions} executions: ${f.message.split("\n")[0]} (action ${f.actionIndex} of ${c.actions.length})`);
      const small = await minimise(c.actions, f.kind);
      mkdirSync("build/fuzz", { recursive: true });
      const path = `build/fuzz/failure-${seed}.json`;
      writeFileSync(path, JSON.stringify({ seed, firstSeed, chaos: c.chaos, kind: f.kind, failure: small.message, originalActions: c.actions.length, actions: small.actions }, null, 1) + "\n");
      console.log(`fuzz: minimised to ${small.actions.length} actions in ${small.tries} runs: ${small.message.split("\n")[0]}`);
      console.log(`fuzz: reproducer ${path}; replay with: node --import tsx tests/fuzz/fuzz.ts --replay ${path}`);
      return 1;
    }
    const now = Date.now();
    if (now - lastReport >= 10_000) {
      lastReport = now;
      const elapsed = (now - start) / 1000;
      console.log(`fuzz: ${executions} executions in ${elapsed.toFixed(0)} s (${(executions / elapsed).toFixed(1)}/s), ${actions} actions, next seed ${seed + 1}`);
    }
  }
  const elapsed = (Date.now() - start) / 1000;
  console.log(
    `fuzz: done seed=${firstSeed} executions=${executions} (${chaosCases} chaos) actions=${actions} rejections=${rejections} api_calls=${apiCalls} guest_to_host_bytes=${guestToHost} seconds=${elapsed.toFixed(0)} rate=${(executions / elapsed).toFixed(1)}/s, no failure`,
  );
  return 0;
}

main().then((code) => process.exit(code));
