/**
 * A test run leaves nothing in the machine's temp dir and never touches the real journal
 * (test/support/run-temp-root.ts, global-setup.ts): this run's workers and their children live
 * in the run's temp root; a run that ends removes its root; one killed by SIGKILL leaves it to
 * the next run's sweep, which keeps the root of a run still going.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveJournalDir } from '../../src/uploader/journal.js';
import { startChild, type KillableChild } from './child-node.js';
import { RUN_DIR_OWNER_FILE, sweepLeftovers } from './leftovers.js';
import { ownerAlive } from './run-owner.js';
import { RUN_ROOT_PREFIX } from './run-temp-root.js';

const PYTHON = process.env.PYTHON ?? 'python3';
const pythonTempDir = (env: NodeJS.ProcessEnv = process.env) =>
  execFileSync(PYTHON, ['-c', 'import tempfile; print(tempfile.mkdtemp(prefix="au-py-"))'], { env, encoding: 'utf8' }).trim();

/**
 * A test run in miniature: enters a temp root in argv[2] as the global setup does, makes temp
 * dirs there as a test (Node) and a cross-check (Python) would, prints them, and then either
 * idles until killed or, with argv[3] === 'finish', ends as a run does (leave()).
 */
const RUN = `
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { enterRunTempRoot } from ${JSON.stringify(fileURLToPath(new URL('./run-temp-root.ts', import.meta.url)))};
const [outer, mode, python] = process.argv.slice(2);
const run = enterRunTempRoot(outer);
const node = mkdtempSync(join(tmpdir(), 'au-uploader-'));
const py = execFileSync(python, ['-c', 'import tempfile; print(tempfile.mkdtemp())'], { encoding: 'utf8' }).trim();
console.log(JSON.stringify({ root: run.root, node, py }));
if (mode === 'finish') { run.leave(); console.log('left'); }
else { console.log('ready'); setInterval(() => {}, 1000); }
`;

let work: string;
let runScript: string;
const children: KillableChild[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'au-run-root-test-'));
  runScript = join(work, 'run.mjs');
  const bundle = buildSync({ stdin: { contents: RUN, resolveDir: work, loader: 'ts' }, bundle: true, format: 'esm', platform: 'node', write: false });
  writeFileSync(runScript, bundle.outputFiles[0]!.text);
});

afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  rmSync(work, { recursive: true, force: true });
});

async function startRun(outer: string, mode: 'idle' | 'finish'): Promise<{ child: KillableChild; root: string; node: string; py: string }> {
  const child = startChild([runScript, outer, mode, PYTHON]);
  children.push(child);
  await child.waitFor(mode === 'finish' ? 'left' : 'ready', 30_000);
  const line = child.output().split('\n').find((l) => l.startsWith('{'))!;
  return { child, ...(JSON.parse(line) as { root: string; node: string; py: string }) };
}

describe('test support: the run temp root', () => {
  it("this run's workers, and the Node and Python processes they start, use the run's root; the journal and HOME live in it", () => {
    const root = tmpdir();
    expect(basename(root)).toMatch(new RegExp(`^${RUN_ROOT_PREFIX}\\d+-`));
    // Owned by the live vitest process that made it: no other run's sweep removes it meanwhile.
    expect(ownerAlive(readFileSync(join(root, RUN_DIR_OWNER_FILE), 'utf8').trim())).toBe(true);
    expect(execFileSync(process.execPath, ['-p', 'require("node:os").tmpdir()'], { encoding: 'utf8' }).trim()).toBe(root);
    const py = pythonTempDir();
    expect(py.startsWith(`${root}/`)).toBe(true);
    rmSync(py, { recursive: true });
    // The journal default, and that of a test passing `env: {}` (os.homedir() reads HOME), resolve inside the root.
    expect(resolveJournalDir().startsWith(`${root}/`)).toBe(true);
    expect(resolveJournalDir({ env: {} }).startsWith(`${root}/`)).toBe(true);
    expect(process.env.HOME!.startsWith(`${root}/`)).toBe(true);
  });

  it('a run that ends removes its root with everything its tests left in it', async () => {
    const outer = mkdtempSync(join(work, 'outer-'));
    const run = await startRun(outer, 'finish');
    expect(run.node.startsWith(`${run.root}/`) && run.py.startsWith(`${run.root}/`)).toBe(true);
    await new Promise((resolve) => run.child.child.once('exit', resolve));
    expect(readdirSync(outer)).toEqual([]);
  });

  it("a run killed by SIGKILL leaves its root to the next run's sweep; the root of a run still going is kept", async () => {
    const outer = mkdtempSync(join(work, 'outer-'));
    const killed = await startRun(outer, 'idle');
    const live = await startRun(outer, 'idle');
    await killed.child.kill();
    expect(existsSync(killed.py)).toBe(true);

    const swept = sweepLeftovers([RUN_ROOT_PREFIX], outer);
    expect(swept.dirs).toEqual([killed.root]);
    expect(readdirSync(outer)).toEqual([basename(live.root)]);
    expect(existsSync(live.node) && existsSync(live.py)).toBe(true);

    // Once that run is gone too, the next sweep takes its root as well.
    await live.child.kill();
    expect(sweepLeftovers([RUN_ROOT_PREFIX], outer).dirs).toEqual([live.root]);
    expect(readdirSync(outer)).toEqual([]);
  });
});
