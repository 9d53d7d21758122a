/**
 * The benchmark driver (bundled and started by bench/run.mjs): starts the loopback servers,
 * runs each scenario with both sides as separate child processes, writes
 * bench/results/<date>.json and the table in docs/benchmarks.md.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { BenchData } from './data.js';
import { hasGnuTime } from './measure.js';
import { Peers } from './peers.js';
import { renderDetails, renderMachine, renderTable, renderTiming } from './report.js';
import { SCENARIOS, type BenchContext, type ScenarioResult } from './scenarios.js';
import { startServers, type ServerName } from './servers.js';
import { linkLabel, linkServers, type Link } from './link.js';

export interface BenchResults {
  date: string;
  mode: 'quick' | 'full';
  scale: number;
  rounds: number;
  durationS: number;
  /**
   * Where the run's wall time went, s. `startup` is the wall time until the first measurement;
   * the servers, the build, the data and the Python imports within it ran at the same time,
   * each given with its own duration. Scenarios: `durationS` and `measuredS` on each.
   */
  timing?: {
    startupS: number;
    serversS: number;
    buildS: number;
    /** Preparing the scenarios prepared up front: their data and Python imports, at once. */
    dataS: number;
    /** Writing every data set of the run (summed; some overlap). */
    dataWriteS?: number;
    /** Each Python fork server's imports (none with --fresh-peers). */
    peerImportsS: number[];
    scenariosS: Record<string, number>;
    /** Stopping the servers and the Python fork servers at the end. */
    stopS?: number;
    freshPeers: boolean;
  };
  machine: {
    cpuModel: string;
    cores: number;
    memGiB: number;
    os: string;
    loadAvg: string[];
    node: string;
    python: string;
    mlflow: string;
    huggingfaceHub: string;
    boto3: string;
    moto: string;
    package: string;
    ourApi: string;
    rssSource: string;
  };
  scenarios: ScenarioResult[];
  /**
   * Set on the results `--report` put together from several runs' files: each file, with when
   * it ran, what it ran and the load it started at (scenario results are taken whole, the
   * latest file's copy of a scenario-and-link winning).
   */
  mergedFrom?: { file: string; date: string; only?: string[]; loadAvg: string[] }[];
  /** The scenarios a partial (`--only`) run was asked for. */
  only?: string[];
}

interface Args {
  quick: boolean;
  rounds: number;
  only?: Set<string>;
  writeDocs: boolean;
  freshPeers: boolean;
  /** Round-trip times of the `--link` runs, ms (the loopback run always comes first). */
  links: number[];
  /** `--bandwidth`, MB/s per direction for the link runs. */
  bandwidthMBps?: number;
  /** `--report a.json,b.json`: measure nothing, put the tables together from these results. */
  report?: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, rounds: 3, writeDocs: true, freshPeers: false, links: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--rounds') args.rounds = Number(argv[++i]);
    else if (a.startsWith('--rounds=')) args.rounds = Number(a.slice('--rounds='.length));
    else if (a === '--only') args.only = new Set(argv[++i]!.split(','));
    else if (a.startsWith('--only=')) args.only = new Set(a.slice('--only='.length).split(','));
    else if (a === '--no-docs') args.writeDocs = false;
    else if (a === '--fresh-peers') args.freshPeers = true;
    else if (a === '--link' || a.startsWith('--link=')) args.links = (a === '--link' ? argv[++i]! : a.slice('--link='.length)).split(',').map(Number);
    else if (a === '--bandwidth' || a.startsWith('--bandwidth=')) args.bandwidthMBps = Number(a === '--bandwidth' ? argv[++i] : a.slice('--bandwidth='.length));
    else if (a === '--report' || a.startsWith('--report=')) args.report = (a === '--report' ? argv[++i]! : a.slice('--report='.length)).split(',');
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        [
          'npm run bench -- [--quick] [--rounds N] [--only a,b] [--no-docs]',
          '  --quick      sizes / 16 (under 2 minutes)',
          '  --rounds N   rounds per comparison (default 3, at least 3 for the docs)',
          `  --only       scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`,
          '  --no-docs    do not touch docs/benchmarks.md',
          '  --no-build   measure dist/ as it is (no `npm run build` when src/ is newer)',
          '  --fresh-peers  a fresh Python process per measurement, not a fork of one that',
          '               imported once (same figures, a slower run; for checking that)',
          '  --link 20,80 then run the MLflow scenarios and hub-publish again through a latency',
          '               proxy on loopback adding each round-trip time (ms); one table per link',
          '  --bandwidth N  cap each direction of the --link runs at N MB/s',
          '  --report a.json,b.json  measure nothing: write the tables of docs/benchmarks.md',
          '               from saved results (bench/results/), a later file\'s scenario',
          '               (per link) replacing an earlier one\'s; for partial runs',
          '',
        ].join('\n'),
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new Error('--rounds must be an integer >= 1');
  if (args.links.some((rtt) => !Number.isFinite(rtt) || rtt <= 0 || rtt > 1000)) throw new Error('--link takes round-trip times in ms, 1 to 1000, e.g. --link 20,80');
  if (args.bandwidthMBps !== undefined && !(args.bandwidthMBps > 0)) throw new Error('--bandwidth takes MB/s > 0');
  if (args.only) for (const name of args.only) if (!SCENARIOS.some((s) => s.name === name)) throw new Error(`unknown scenario ${name}`);
  return args;
}

async function pythonVersions(python: string): Promise<Record<string, string>> {
  const script = `
import json, sys, importlib.metadata as m
out = {"python": sys.version.split()[0]}
for name in ("mlflow", "huggingface_hub", "boto3", "moto"):
    try: out[name] = m.version(name)
    except Exception: out[name] = "?"
print(json.dumps(out))`;
  const { stdout } = await promisify(execFile)(python, ['-c', script], { encoding: 'utf8' });
  return JSON.parse(stdout.trim()) as Record<string, string>;
}

/** Milliseconds until `promise` settles (its rejection is the caller's). */
function timed(promise: Promise<unknown>): Promise<number> {
  const started = performance.now();
  return promise.then(() => performance.now() - started);
}

const secs = (ms: number) => Math.round(ms / 100) / 10;

/**
 * @param options.build the `npm run build` that bench/run.mjs started (if dist/ was stale):
 *   the servers start meanwhile; nothing is measured before it is done.
 */
export async function main(options: { root: string; argv: string[]; build?: Promise<unknown>; startedAt?: number }): Promise<void> {
  const args = parseArgs(options.argv);
  const { root } = options;
  if (args.report) return report(root, args);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = options.startedAt ?? Date.now();
  const scenarios = SCENARIOS.filter((s) => !args.only || args.only.has(s.name));
  const wanted = new Set<ServerName>(scenarios.flatMap((s) => s.servers));
  const work = mkdtempSync(join(tmpdir(), 'au-bench-'));
  const loadAvg = loadavg().map((l) => l.toFixed(2));
  log(`artifact-uploader bench (${args.quick ? 'quick' : 'full'}), data in ${work}`);

  const build = timed(options.build ?? Promise.resolve());
  build.catch(() => {}); // awaited with the servers below
  const servers = await startServers(join(work, 'servers'), wanted, log);
  const serversReady = timed(servers.ready);
  serversReady.catch(() => {});
  const peers = new Peers(servers.python, join(root, 'bench', 'children', 'peer.py'), work, args.freshPeers);
  const data = new BenchData(join(work, 'data'));
  const cleanup = async () => {
    await Promise.all([servers.stop(), peers.stop()]);
    rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  let dist: Record<string, unknown> = {};
  const results: ScenarioResult[] = [];
  let versions: Record<string, string> = {};
  let timing: NonNullable<BenchResults['timing']> | undefined;
  try {
    const ctx: BenchContext = {
      quick: args.quick,
      scale: args.quick ? 1 / 16 : 1,
      rounds: args.rounds,
      servers,
      work,
      python: servers.python,
      scripts: {
        ours: join(root, 'bench', 'children', 'ours.mjs'),
        peer: join(root, 'bench', 'children', 'peer.py'),
        cli: join(root, 'dist', 'cli.js'),
        fakeHub: join(root, 'bench', '.cache', 'fake-hub-server.mjs'),
      },
      data,
      peers,
      log,
    };
    // Start-up: servers, the build, the data and the Python imports all at once. A quick run
    // prepares every scenario now (its data is small); a full run only the first, and each
    // further one right before it runs (so gigabytes are not written hours ahead). Nothing is
    // measured until all of it is done, so no measurement shares the machine with it.
    const prepared = new Map<string, Promise<unknown>>();
    const prepare = (scenario: (typeof scenarios)[number]) => {
      let p = prepared.get(scenario.name);
      if (!p) {
        p = scenario.prepare(ctx);
        p.catch(() => {});
        prepared.set(scenario.name, p);
      }
      return p;
    };
    const upFront = args.quick ? scenarios : scenarios.slice(0, 1);
    const dataUpFront = timed(Promise.allSettled(upFront.map(prepare)));
    const versionsP = pythonVersions(servers.python);
    versionsP.catch(() => {});
    const startupMs = await timed(Promise.all([serversReady, build, dataUpFront, versionsP]));
    versions = await versionsP;
    dist = (await import(pathToFileURL(join(root, 'dist', 'index.js')).href)) as Record<string, unknown>;
    timing = {
      startupS: secs(startupMs),
      serversS: secs(await serversReady),
      buildS: secs(await build),
      dataS: secs(await dataUpFront),
      peerImportsS: peers.importMs.map(secs),
      scenariosS: {},
      freshPeers: args.freshPeers,
    };
    log(`start-up ${timing.startupS} s (at once: servers ${timing.serversS} s, build ${timing.buildS} s, data and Python imports ${timing.dataS} s)`);
    const runScenario = async (scenario: (typeof scenarios)[number], runCtx: BenchContext) => {
      const label = runCtx.link ? `${scenario.name} @ ${linkLabel(runCtx.link)}` : scenario.name;
      log(`\n== ${label}`);
      const t0 = Date.now();
      let result: ScenarioResult;
      try {
        await prepare(scenario);
        result = await scenario.run(runCtx);
        result.measuredS = secs(Object.values(result.sides).reduce((sum, side) => sum + side.ms.reduce((a, b) => a + b, 0), 0));
      } catch (error) {
        log(`!! ${label} failed: ${(error as Error).stack ?? String(error)}`);
        result = { name: scenario.name, title: scenario.name, workload: '', server: '', sides: {}, checks: [], notes: [], error: (error as Error).message };
      }
      if (runCtx.link) result.link = runCtx.link;
      result.durationS = secs(Date.now() - t0);
      timing!.scenariosS[label] = result.durationS;
      results.push(result);
      log(`   (${result.durationS} s${result.measuredS !== undefined ? `, of which measured ${result.measuredS} s` : ''})`);
    };
    for (const scenario of scenarios) await runScenario(scenario, ctx);
    // Then the MLflow scenarios and hub-publish again, through each link: same servers, data and peers.
    for (const rttMs of args.links) {
      const link: Link = { rttMs, ...(args.bandwidthMBps ? { bandwidthBytesPerS: args.bandwidthMBps * 1e6 } : {}) };
      const linked = await linkServers(servers, link);
      try {
        for (const scenario of scenarios.filter((s) => s.linkable)) await runScenario(scenario, { ...ctx, servers: linked.servers, link });
      } finally {
        await linked.close();
      }
    }
    timing.peerImportsS = peers.importMs.map(secs);
    timing.dataWriteS = secs(data.writeMs);
  } finally {
    const stopping = Date.now();
    await Promise.all([servers.stop(), peers.stop()]);
    if (timing) timing.stopS = secs(Date.now() - stopping);
    if (results.some((r) => r.error)) {
      // Keep the server logs of a failed scenario (bench/results/tmp/ is git-ignored).
      const keep = join(root, 'bench', 'results', 'tmp', `server-logs-${Date.now()}`);
      mkdirSync(keep, { recursive: true });
      cpSync(servers.logDir, keep, { recursive: true });
      log(`server logs kept in ${keep}`);
    }
    rmSync(work, { recursive: true, force: true });
  }

  const date = new Date().toISOString();
  const bench: BenchResults = {
    date,
    mode: args.quick ? 'quick' : 'full',
    scale: args.quick ? 1 / 16 : 1,
    rounds: args.rounds,
    durationS: Math.round((Date.now() - started) / 1000),
    ...(timing ? { timing } : {}),
    machine: {
      cpuModel: cpus()[0]?.model.trim() ?? '?',
      cores: cpus().length,
      memGiB: Math.round(totalmem() / 2 ** 30),
      os: `${type()} ${release()}`,
      loadAvg,
      node: process.version,
      python: versions.python ?? '?',
      mlflow: versions.mlflow ?? '?',
      huggingfaceHub: versions.huggingface_hub ?? '?',
      boto3: versions.boto3 ?? '?',
      moto: versions.moto ?? '?',
      package: pkg.version,
      ourApi: typeof dist.ArtifactUploader === 'function' ? 'ArtifactUploader (dist/)' : 'stores layer (dist/; ArtifactUploader not built yet)',
      rssSource: `${(await hasGnuTime()) ? 'GNU time (%M)' : "the child's process.resourceUsage().maxRSS"}${args.freshPeers ? '' : '; Python peers: getrusage() in the forked child'}`,
    },
    scenarios: results,
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  if (args.only) bench.only = [...args.only];
  // A partial run (--only) never overwrites a whole run's results, nor an earlier partial run's
  // (`--report` puts them together).
  const file = join(root, 'bench', 'results', `${date.slice(0, 10)}${args.quick ? '-quick' : ''}${args.only ? `-partial-${date.slice(11, 16).replace(':', '')}` : ''}.json`);
  writeFileSync(file, `${JSON.stringify(bench, null, 2)}\n`);

  writeTables(root, bench, [undefined, ...args.links], args.writeDocs && !args.only);
  process.stdout.write(`\n${renderTiming(bench)}\nresults: ${file} (${bench.durationS} s)\n`);
}

/** One table per link, loopback first: to the console, and to docs/benchmarks.md if `toDocs`. */
function writeTables(root: string, bench: BenchResults, links: (number | undefined)[], toDocs: boolean): void {
  const views = links.map((rttMs) => ({ ...bench, scenarios: bench.scenarios.filter((r) => r.link?.rttMs === rttMs), ...(rttMs ? { link: rttMs } : {}) }));
  for (const view of views) {
    const table = renderTable(view);
    const heading = view.link ? `### Through a ${linkLabel(view.scenarios[0]?.link ?? { rttMs: view.link })} link\n\n` : '';
    process.stdout.write(`\n${heading}${renderMachine(view)}\n\n${table}\n\n${renderDetails(view)}\n`);
    if (toDocs) writeDocs(join(root, 'docs', 'benchmarks.md'), view, table);
  }
}

/**
 * `--report`: the tables from saved results, so that partial runs (say, the link runs of a few
 * scenarios, taken when the machine was idle) complete a whole run's tables. Every file must be
 * of the same mode and machine; each scenario (per link) comes whole from the last file that has
 * it, and the machine line lists every file with its date and load.
 */
function report(root: string, args: Args): void {
  const runs = args.report!.map((name) => {
    const file = existsSync(name) ? name : join(root, 'bench', 'results', name);
    return { file: file.slice(file.lastIndexOf('/') + 1), bench: JSON.parse(readFileSync(file, 'utf8')) as BenchResults };
  });
  const last = runs.at(-1)!.bench;
  for (const { file, bench } of runs) {
    if (bench.mode !== last.mode) throw new Error(`--report: ${file} is a ${bench.mode} run, the last file a ${last.mode} one`);
    if (bench.machine.cpuModel !== last.machine.cpuModel || bench.machine.cores !== last.machine.cores) throw new Error(`--report: ${file} ran on another machine`);
  }
  const byKey = new Map<string, ScenarioResult>();
  for (const { bench } of runs) for (const s of bench.scenarios) if (!s.error || !byKey.has(`${s.name}@${s.link?.rttMs ?? 0}`)) byKey.set(`${s.name}@${s.link?.rttMs ?? 0}`, s);
  const order = (s: ScenarioResult) => SCENARIOS.findIndex((x) => x.name === s.name);
  const scenarios = [...byKey.values()].sort((a, b) => (a.link?.rttMs ?? 0) - (b.link?.rttMs ?? 0) || order(a) - order(b));
  const merged: BenchResults = {
    ...last,
    date: runs.map((r) => r.bench.date).sort().at(-1)!,
    rounds: Math.min(...runs.map((r) => r.bench.rounds)),
    scenarios,
    mergedFrom: runs.map(({ file, bench }) => ({ file, date: bench.date, ...(bench.only ? { only: bench.only } : {}), loadAvg: bench.machine.loadAvg })),
  };
  // Loopback (no link, 0) first. Array#sort would put `undefined` last without asking.
  const links = [...new Set(scenarios.map((s) => s.link?.rttMs ?? 0))].sort((a, b) => a - b).map((rttMs) => (rttMs === 0 ? undefined : rttMs));
  writeTables(root, merged, links, args.writeDocs);
}

/**
 * Replaces the generated section of docs/benchmarks.md for this mode (full or quick), leaving
 * the hand-written text around it alone.
 */
function writeDocs(path: string, bench: BenchResults & { link?: number }, table: string): void {
  const key = bench.link ? `${bench.mode}-link${bench.link}ms` : bench.mode;
  const start = `<!-- bench:${key}:start -->`;
  const end = `<!-- bench:${key}:end -->`;
  const section = [start, '', renderMachine(bench), '', table, '', '<details><summary>every sample</summary>', '', renderDetails(bench), '', '</details>', '', end].join('\n');
  let doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + section + doc.slice(j + end.length);
  else doc = `${doc.trimEnd()}\n\n## Latest ${bench.mode} run${bench.link ? `, through a ${bench.link} ms round-trip link` : ''}\n\n${section}\n`;
  writeFileSync(path, doc);
}
