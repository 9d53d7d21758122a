/**
 * The benchmark driver (bundled and started by bench/run.mjs): starts the loopback servers,
 * runs each scenario with both sides as separate child processes, writes
 * bench/results/<date>.json and the table in docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { hasGnuTime } from './measure.js';
import { renderDetails, renderMachine, renderTable } from './report.js';
import { SCENARIOS, type BenchContext, type ScenarioResult } from './scenarios.js';
import { startServers, type ServerName } from './servers.js';

export interface BenchResults {
  date: string;
  mode: 'quick' | 'full';
  scale: number;
  rounds: number;
  durationS: number;
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
}

interface Args {
  quick: boolean;
  rounds: number;
  only?: Set<string>;
  writeDocs: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, rounds: 3, writeDocs: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') args.quick = true;
    else if (a === '--rounds') args.rounds = Number(argv[++i]);
    else if (a.startsWith('--rounds=')) args.rounds = Number(a.slice('--rounds='.length));
    else if (a === '--only') args.only = new Set(argv[++i]!.split(','));
    else if (a.startsWith('--only=')) args.only = new Set(a.slice('--only='.length).split(','));
    else if (a === '--no-docs') args.writeDocs = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        [
          'npm run bench -- [--quick] [--rounds N] [--only a,b] [--no-docs]',
          '  --quick      sizes / 16 (under 2 minutes)',
          '  --rounds N   rounds per comparison (default 3, at least 3 for the docs)',
          `  --only       scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`,
          '  --no-docs    do not touch docs/benchmarks.md',
          '',
        ].join('\n'),
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (see --help)`);
  }
  if (!Number.isInteger(args.rounds) || args.rounds < 1) throw new Error('--rounds must be an integer >= 1');
  if (args.only) for (const name of args.only) if (!SCENARIOS.some((s) => s.name === name)) throw new Error(`unknown scenario ${name}`);
  return args;
}

function pythonVersions(python: string): Record<string, string> {
  const script = `
import json, sys, importlib.metadata as m
out = {"python": sys.version.split()[0]}
for name in ("mlflow", "huggingface_hub", "boto3", "moto"):
    try: out[name] = m.version(name)
    except Exception: out[name] = "?"
print(json.dumps(out))`;
  return JSON.parse(execFileSync(python, ['-c', script], { encoding: 'utf8' }).trim()) as Record<string, string>;
}

export async function main(options: { root: string; argv: string[] }): Promise<void> {
  const args = parseArgs(options.argv);
  const { root } = options;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const started = Date.now();
  const scenarios = SCENARIOS.filter((s) => !args.only || args.only.has(s.name));
  const wanted = new Set<ServerName>(scenarios.flatMap((s) => s.servers));
  const work = mkdtempSync(join(tmpdir(), 'au-bench-'));
  const loadAvg = loadavg().map((l) => l.toFixed(2));
  log(`artifact-uploader bench (${args.quick ? 'quick' : 'full'}), data in ${work}`);

  const servers = await startServers(join(work, 'servers'), wanted, log);
  const cleanup = async () => {
    await servers.stop();
    rmSync(work, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const dist = (await import(pathToFileURL(join(root, 'dist', 'index.js')).href)) as Record<string, unknown>;
  const results: ScenarioResult[] = [];
  let versions: Record<string, string> = {};
  try {
    versions = pythonVersions(servers.python);
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
      log,
    };
    for (const scenario of scenarios) {
      log(`\n== ${scenario.name}`);
      const t0 = Date.now();
      try {
        results.push(await scenario.run(ctx));
      } catch (error) {
        log(`!! ${scenario.name} failed: ${(error as Error).stack ?? String(error)}`);
        results.push({ name: scenario.name, title: scenario.name, workload: '', server: '', sides: {}, checks: [], notes: [], error: (error as Error).message });
      }
      log(`   (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    }
  } finally {
    await servers.stop();
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
      rssSource: (await hasGnuTime()) ? 'GNU time (%M)' : "the child's process.resourceUsage().maxRSS",
    },
    scenarios: results,
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  // A partial run (--only) never overwrites a whole run's results.
  const file = join(root, 'bench', 'results', `${date.slice(0, 10)}${args.quick ? '-quick' : ''}${args.only ? '-partial' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(bench, null, 2)}\n`);

  const table = renderTable(bench);
  process.stdout.write(`\n${renderMachine(bench)}\n\n${table}\n\n${renderDetails(bench)}\n\nresults: ${file} (${bench.durationS} s)\n`);
  if (args.writeDocs && !args.only) writeDocs(join(root, 'docs', 'benchmarks.md'), bench, table);
}

/**
 * Replaces the generated section of docs/benchmarks.md for this mode (full or quick), leaving
 * the hand-written text around it alone.
 */
function writeDocs(path: string, bench: BenchResults, table: string): void {
  const start = `<!-- bench:${bench.mode}:start -->`;
  const end = `<!-- bench:${bench.mode}:end -->`;
  const section = [start, '', renderMachine(bench), '', table, '', '<details><summary>every sample</summary>', '', renderDetails(bench), '', '</details>', '', end].join('\n');
  let doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i >= 0 && j > i) doc = doc.slice(0, i) + section + doc.slice(j + end.length);
  else doc = `${doc.trimEnd()}\n\n## Latest ${bench.mode} run\n\n${section}\n`;
  writeFileSync(path, doc);
}
