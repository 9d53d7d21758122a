/**
 * The scenarios of issue 7 (and the s3 variants of issue 8). Each returns a
 * {@link ScenarioResult}: per-side medians, ratios against each target and peak RSS checks.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compareSides, median, ratio, settle, type RatioStats, type Side, type SideResult } from './compare.js';
import { GiB, KiB, MiB, type BenchData } from './data.js';
import { runChild, type Measurement } from './measure.js';
import type { PeerProfile, Peers } from './peers.js';
import { linkLabel, linkProxyOptions, type Link } from './link.js';
import { startLatencyProxy, type LatencyProxy } from './latency-proxy.js';
import { processGroupCpuMs, untilIdle, withServerCpu } from './server-cpu.js';
import { createRun, removeRunArtifacts, resetMoto, startFakeHubProcess, type BenchServers, type MlflowServer, type ServerName } from './servers.js';

export interface BenchContext {
  quick: boolean;
  /** 1 for a full run, 1/16 for --quick. */
  scale: number;
  rounds: number;
  servers: BenchServers;
  /** Temp dir for data and outputs (removed at the end). */
  work: string;
  python: string;
  scripts: { ours: string; peer: string; cli: string; fakeHub: string };
  /** The data sets, made once (and shared where two scenarios use the same one). */
  data: BenchData;
  /** Runs Python peer jobs (forked from a fork server, or a fresh process with --fresh-peers). */
  peers: Peers;
  /** Set when the servers are reached through a latency proxy (`--link`). */
  link?: Link;
  log(line: string): void;
}

export type Check =
  | { kind: 'ratio'; vs: string; stats: RatioStats; target: number; note?: string; met: boolean }
  | { kind: 'rss'; what: string; side: string; peakMiB: number | null; limitMiB: number; met: boolean | null }
  /** What `ours` adds over the `vs` side: the median of the per-round differences. */
  | { kind: 'overhead'; vs: string; what: 'time' | 'rss'; added: number | null; limit: number; unit: 'ms' | 'MiB'; met: boolean | null };

export interface ScenarioResult {
  name: string;
  title: string;
  workload: string;
  server: string;
  bytes?: number;
  sides: Record<string, SideResult>;
  checks: Check[];
  notes: string[];
  error?: string;
  /** Wall time of the scenario in this run, s (measurements, set-up and bookkeeping). */
  durationS?: number;
  /** Of which the measured operations, s (sum over every side and round). */
  measuredS?: number;
  /** The link it ran through (`--link`); absent: loopback, directly. */
  link?: Link;
}

export interface Scenario {
  name: string;
  /** Servers it needs (started once for the whole bench). */
  servers: ServerName[];
  /** Runs again through each `--link` (the MLflow scenarios and `hub-publish`). */
  linkable?: boolean;
  /**
   * Starts what the scenario needs before its first measurement (data, the Python imports of
   * its peer); resolves when all of it is ready. May run while the servers start (their
   * addresses and env are known, they may not answer yet) and is called at most once.
   */
  prepare(ctx: BenchContext): Promise<unknown>;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}

const sized = (ctx: BenchContext, bytes: number) => Math.round(bytes * ctx.scale);
const fmtBytes = (n: number) => (n >= GiB ? `${(n / GiB).toFixed(n % GiB ? 2 : 0)} GiB` : n >= MiB ? `${Math.round(n / MiB)} MiB` : `${Math.round(n / KiB)} KiB`);

function ours(ctx: BenchContext, job: Record<string, unknown>, env: Record<string, string> = {}): Promise<Measurement> {
  return runChild(process.execPath, [ctx.scripts.ours, JSON.stringify(job)], { env, cwd: ctx.work });
}

function peer(ctx: BenchContext, profile: PeerProfile, job: Record<string, unknown>, env: Record<string, string> = {}): Promise<Measurement> {
  return ctx.peers.run(profile, env, job);
}

/** The 1 GiB file (`weights.bin`) of single-1g, single-1g-s3 and mpu-1g: one copy for all three. */
const oneFile = (ctx: BenchContext) => ctx.data.randomFile('weights-1g', 'weights.bin', sized(ctx, GiB));
const manySmallCount = (ctx: BenchContext) => Math.max(10, Math.round(2000 * ctx.scale));
/** The 32 KiB files of many-small and many-small-s3. */
const manySmallDir = (ctx: BenchContext) => ctx.data.manySmall('many-small', manySmallCount(ctx), 32 * KiB);
const mpuEnv = (ctx: BenchContext) => ({
  ...ctx.servers.s3!.env,
  // Both sides read MLflow's multipart env vars; the threshold is halved so --quick still goes multipart.
  MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD: 'true',
  MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE: String(Math.floor(sized(ctx, GiB) / 2)),
});
const hubEnv = (ctx: BenchContext) => ({ HF_HUB_DISABLE_XET: '1', HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HOME: join(ctx.work, 'hf-home') });

/**
 * A fresh run for each measurement; its stored bytes are removed right after. The server's CPU
 * (and moto's, where the artifacts go there) is recorded around the measurement alone.
 */
async function withRun(ctx: BenchContext, server: MlflowServer, fn: (runId: string) => Promise<Measurement>, options: { serverCpu?: boolean } = {}): Promise<Measurement> {
  const runId = await createRun(server.url);
  try {
    // `serverCpu: false`: fn records the servers' CPU around its measured part itself.
    return options.serverCpu === false ? await fn(runId) : await withServerCpu(server.cpuGroups, () => fn(runId));
  } finally {
    removeRunArtifacts(server, runId);
    if (ctx.servers.moto && server.env.MLFLOW_S3_ENDPOINT_URL) await resetMoto(ctx.servers.moto.endpoint);
  }
}

function ratioCheck(sides: Record<string, SideResult>, vs: string, target: number, note?: string): Check {
  const stats = ratio(sides, vs);
  return { kind: 'ratio', vs, stats, target, met: stats.median >= target, ...(note ? { note } : {}) };
}

/** one big file: ours vs MlflowClient().log_artifact (and curl on the proxy). */
function singleFile(name: string, serverName: 'plain' | 'direct'): Scenario {
  return {
    name,
    servers: [serverName],
    linkable: true,
    prepare: (ctx) => Promise.all([oneFile(ctx), ctx.peers.warm('mlflow', ctx.servers[serverName]!.env)]),
    async run(ctx) {
      const server = ctx.servers[serverName]!;
      const size = sized(ctx, GiB);
      const file = await oneFile(ctx);
      const sides: Side[] = [
        { key: 'ours', label: 'ArtifactUploader.uploadFile', run: () => withRun(ctx, server, (runId) => ours(ctx, { op: 'file', trackingUri: server.url, runId, path: file }, server.env)) },
        { key: 'python', label: 'MlflowClient().log_artifact', run: () => withRun(ctx, server, (runId) => peer(ctx, 'mlflow', { op: 'log_artifact', trackingUri: server.url, runId, path: file }, server.env)) },
      ];
      if (serverName === 'plain') {
        sides.push({
          key: 'curl',
          label: 'curl -T (PUT to the same mlflow-artifacts URL)',
          run: () =>
            withRun(ctx, server, (runId) =>
              runChild('curl', ['-sS', '-f', '-o', '/dev/null', '-T', file, `${server.url}/api/2.0/mlflow-artifacts/artifacts/0/${runId}/artifacts/weights.bin`], { wholeProcess: true }),
            ),
        });
      }
      const results = await compareSides(sides, ctx.rounds, ctx.log, { warmUp: serverName === 'direct' });
      const checks: Check[] =
        serverName === 'plain'
          ? [ratioCheck(results, 'python', 1.05), ratioCheck(results, 'curl', 0.97)]
          : [ratioCheck(results, 'python', 1.0, 'issue 8 sets no figure; our bar is parity')];
      return {
        name,
        title: serverName === 'plain' ? 'one file, proxied PUT' : 'one file, direct s3:// (boto3 vs AWS SDK)',
        workload: `1 × ${fmtBytes(size)}`,
        server: (serverName === 'plain' ? 'mlflow server, local artifacts' : 'mlflow --no-serve-artifacts, s3:// on moto') + throughLink(ctx),
        bytes: size,
        sides: results,
        checks,
        notes: [],
      };
    },
  };
}

/**
 * many-small's target: 5× on loopback (issue 7); through a link, where each request waits on
 * the round trip and concurrency decides, 8× at 20 ms and 15× at 80 ms (issue 18).
 */
function manySmallTarget(ctx: BenchContext): number {
  const rtt = ctx.link?.rttMs ?? 0;
  return rtt >= 80 ? 15 : rtt >= 20 ? 8 : 5;
}

/** Appended to a scenario's server description when it ran through a link. */
export const throughLink = (ctx: BenchContext) => (ctx.link ? `, through a ${linkLabel(ctx.link)} link` : '');

/** many small files: uploadDirectory vs log_artifacts. */
function manySmall(name: string, serverName: 'plain' | 'direct'): Scenario {
  return {
    name,
    servers: [serverName],
    linkable: true,
    prepare: (ctx) => Promise.all([manySmallDir(ctx), ctx.peers.warm('mlflow', ctx.servers[serverName]!.env)]),
    async run(ctx) {
      const server = ctx.servers[serverName]!;
      const count = manySmallCount(ctx);
      const dir = await manySmallDir(ctx);
      const sides: Side[] = [
        { key: 'ours', label: 'ArtifactUploader.uploadDirectory', run: () => withRun(ctx, server, (runId) => ours(ctx, { op: 'dir', trackingUri: server.url, runId, path: dir, artifactPath: 'data' }, server.env)) },
        { key: 'python', label: 'MlflowClient().log_artifacts', run: () => withRun(ctx, server, (runId) => peer(ctx, 'mlflow', { op: 'log_artifacts', trackingUri: server.url, runId, path: dir, artifactPath: 'data' }, server.env)) },
      ];
      const results = await compareSides(sides, ctx.rounds, ctx.log);
      return {
        name,
        title: serverName === 'plain' ? 'many small files, proxied' : 'many small files, direct s3://',
        workload: `${count} × 32 KiB`,
        server: (serverName === 'plain' ? 'mlflow server, local artifacts' : 'mlflow --no-serve-artifacts, s3:// on moto') + throughLink(ctx),
        bytes: count * 32 * KiB,
        sides: results,
        checks: [ratioCheck(results, 'python', manySmallTarget(ctx), serverName === 'plain' ? undefined : 'target borrowed from many-small')],
        notes: [],
      };
    },
  };
}

const mpu1g: Scenario = {
  name: 'mpu-1g',
  servers: ['s3'],
  linkable: true,
  prepare: (ctx) => Promise.all([oneFile(ctx), ctx.peers.warm('mlflow', mpuEnv(ctx))]),
  async run(ctx) {
    const server = ctx.servers.s3!;
    const size = sized(ctx, GiB);
    const file = await oneFile(ctx);
    const env = mpuEnv(ctx);
    const results = await compareSides(
      [
        { key: 'ours', label: 'ArtifactUploader.uploadFile (multipart)', run: () => withRun(ctx, server, (runId) => ours(ctx, { op: 'file', trackingUri: server.url, runId, path: file }, env)) },
        { key: 'python', label: 'log_artifact, MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=true', run: () => withRun(ctx, server, (runId) => peer(ctx, 'mlflow', { op: 'log_artifact', trackingUri: server.url, runId, path: file }, env)) },
      ],
      ctx.rounds,
      ctx.log,
      { warmUp: true },
    );
    const notes = results.ours!.details.multipart === false ? ['our side did NOT go multipart'] : [];
    return {
      name: 'mpu-1g',
      title: 'one file, proxy multipart upload',
      workload: `1 × ${fmtBytes(size)}, 10 MiB parts`,
      server: `mlflow server, S3 (moto) destination${throughLink(ctx)}`,
      bytes: size,
      sides: results,
      checks: [ratioCheck(results, 'python', 1.1)],
      notes,
    };
  },
};

/**
 * The file of `resume`: the 1 GiB one; with --quick 256 MiB of its own, not 1/16, because at
 * 64 MiB the kill at 50 % comes while the first 4 parts (8 MiB each, 4 in flight) are all still
 * on their way, and nothing could be resumed.
 */
const resumeSize = (ctx: BenchContext) => (ctx.quick ? 256 * MiB : sized(ctx, GiB));
const resumeFile = (ctx: BenchContext) => (ctx.quick ? ctx.data.randomFile('resume-file', 'weights.bin', resumeSize(ctx)) : oneFile(ctx));

/**
 * Crash-resume (issue 14): the CLI uploads the 1 GiB file to an `s3://` run (multipart, moto)
 * through a byte-counting proxy, is SIGKILLed once half of it went up, and the same command runs
 * again; its time and the bytes it sends are set against a full upload of the same file. Both
 * measured sides are whole CLI processes, each with a fresh run and journal.
 */
const resume: Scenario = {
  name: 'resume',
  servers: ['direct'],
  prepare: (ctx) => resumeFile(ctx),
  async run(ctx) {
    const server = ctx.servers.direct!;
    const size = resumeSize(ctx);
    const file = await resumeFile(ctx);
    // A pass-through proxy (no delay) in front of moto: it counts the bytes that go up.
    const proxy = await startLatencyProxy(ctx.servers.moto!.endpoint, { rttMs: 0 });
    const env = (runId: string, journal: string) => ({ ...server.env, MLFLOW_S3_ENDPOINT_URL: proxy.url, MLFLOW_TRACKING_URI: server.url, MLFLOW_RUN_ID: runId, ARTIFACT_UPLOADER_JOURNAL_DIR: journal });
    const argv = [ctx.scripts.cli, 'file', file, '--stage', 'training', '--json'];
    let journals = 0;
    const freshJournal = () => {
      const dir = join(ctx.work, 'resume-journal', String(++journals));
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    const motoGroups = ctx.servers.moto!.cpuGroups;
    /**
     * A whole CLI process, measured, with the bytes it sent up through the proxy, the servers' CPU
     * meanwhile (mlflow and moto, `serverCpuMs`) and moto's alone (`motoCpuMs`).
     */
    const measured = async (runId: string, journal: string): Promise<Measurement> => {
      const before = proxy.bytes.up;
      const motoBefore = processGroupCpuMs(motoGroups);
      const m = await withServerCpu(server.cpuGroups, () => runChild(process.execPath, argv, { env: env(runId, journal), cwd: ctx.work, wholeProcess: true }));
      const motoAfter = processGroupCpuMs(motoGroups);
      const motoCpuMs = motoBefore !== undefined && motoAfter !== undefined ? motoAfter - motoBefore : undefined;
      return { ...m, details: { ...m.details, bytesUp: proxy.bytes.up - before, ...(motoCpuMs !== undefined ? { motoCpuMs } : {}) } };
    };
    /**
     * The CLI, SIGKILLed once `bytes` went up (the proxy's counter, checked every few ms); then
     * waits until moto is idle (it finishes the parts that had arrived) and flushes the writes, as
     * before every measurement, so the measured rerun pays for none of the killed run's work.
     */
    const killedAt = async (runId: string, journal: string, bytes: number): Promise<{ sent: number; motoCpuMs: number | undefined }> => {
      const before = proxy.bytes.up;
      const motoBefore = processGroupCpuMs(motoGroups);
      const child = spawn(process.execPath, argv, { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env(runId, journal) }, cwd: ctx.work, stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      let done = false;
      void exited.then(() => (done = true));
      while (!done && proxy.bytes.up - before < bytes) await new Promise((r) => setTimeout(r, 2));
      if (done) throw new Error('the upload to be interrupted finished before the kill point');
      child.kill('SIGKILL');
      await exited;
      await untilIdle(motoGroups);
      settle();
      const motoAfter = processGroupCpuMs(motoGroups);
      return { sent: proxy.bytes.up - before, motoCpuMs: motoBefore !== undefined && motoAfter !== undefined ? motoAfter - motoBefore : undefined };
    };
    let killed: { sent: number; motoCpuMs: number | undefined } = { sent: 0, motoCpuMs: undefined };
    try {
      const results = await compareSides(
        [
          { key: 'full', label: 'artifact-uploader file (s3:// multipart), whole upload', run: () => withRun(ctx, server, (runId) => measured(runId, freshJournal()), { serverCpu: false }) },
          {
            key: 'ours',
            label: 'the same command after a SIGKILL at 50 %',
            // The servers' CPU is the rerun's alone (measured), not the killed run's as well.
            run: () =>
              withRun(
                ctx,
                server,
                async (runId) => {
                  const journal = freshJournal();
                  killed = await killedAt(runId, journal, Math.floor(size / 2));
                  return measured(runId, journal);
                },
                { serverCpu: false },
              ),
          },
        ],
        ctx.rounds,
        ctx.log,
        { warmUp: true },
      );
      const bytesUp = (side: string) => Number(results[side]!.details.bytesUp ?? 0);
      const pct = (n: number) => `${((100 * n) / size).toFixed(1)} %`;
      const motoCpu = (side: string) => results[side]!.details.motoCpuMs as number | undefined;
      const secs = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
      return {
        name: 'resume',
        title: 'rerun after a kill at 50 %',
        workload: `1 × ${fmtBytes(size)}, s3:// multipart, SIGKILL at 50 %`,
        server: `mlflow server --no-serve-artifacts, s3:// (moto)${throughLink(ctx)}`,
        bytes: size,
        sides: results,
        // Bytes are the exact figure (notes); time also pays the process start and ListParts.
        checks: [ratioCheck(results, 'full', 1.3, 'the rerun sends about half (plus the parts cut mid-body at the kill): at least 1.3× faster than the whole upload')],
        notes: [
          `bytes up (last round): whole upload ${fmtBytes(bytesUp('full'))} (${pct(bytesUp('full'))}), before the kill ${fmtBytes(killed.sent)}, rerun ${fmtBytes(bytesUp('ours'))} (${pct(bytesUp('ours'))}, headers included)`,
          `moto's CPU (last round): whole upload ${secs(motoCpu('full'))}, killed run ${secs(killed.motoCpuMs)} (not counted), rerun ${secs(motoCpu('ours'))}`,
        ],
      };
    } finally {
      await proxy.close();
      rmSync(join(ctx.work, 'resume-journal'), { recursive: true, force: true });
      if (ctx.quick) await ctx.data.remove('resume-file');
    }
  },
};

function rssCheck(what: string, side: string, r: SideResult, limitMiB: number): Check {
  return { kind: 'rss', what, side, peakMiB: r.peakRssMiB, limitMiB, met: r.peakRssMiB === null ? null : r.peakRssMiB <= limitMiB };
}

/** The 1 KiB files of rss-20k: 20,000 of them (1,250 with --quick). */
const manyFilesCount = (ctx: BenchContext) => Math.max(100, Math.round(20_000 * ctx.scale));
const manyFilesDir = (ctx: BenchContext) => ctx.data.manySmall('many-files', manyFilesCount(ctx), KiB);

/**
 * Peak RSS of one directory of 20,000 small files (issue 18), in each of the four ways the issue
 * measured it: `uploadDirectory` through the `mlflow server`, `uploadDirectory` into a `file:`
 * store (a fresh ./mlruns), `createCheckpointArchive` of the directory, and a dry run (the plan
 * alone). One round each; each its own process, import included. Memory may grow by a small
 * record per file, never by the files' bytes or by per-file buffers or promises kept alive.
 */
const rss20k: Scenario = {
  name: 'rss-20k',
  servers: ['plain'],
  prepare: (ctx) => manyFilesDir(ctx),
  async run(ctx) {
    const server = ctx.servers.plain!;
    const count = manyFilesCount(ctx);
    const dir = await manyFilesDir(ctx);
    const out = join(ctx.work, 'rss-20k-out');
    const job = { op: 'dir', path: dir, artifactPath: 'data' };
    const modes: Array<{ key: string; label: string; run: () => Promise<Measurement> }> = [
      { key: 'server', label: 'uploadDirectory, mlflow server', run: () => withRun(ctx, server, (runId) => ours(ctx, { ...job, trackingUri: server.url, runId })) },
      { key: 'file-store', label: 'uploadDirectory, file: store', run: () => ours(ctx, { ...job, fileStore: join(out, `mlruns-${Date.now()}`) }) },
      { key: 'archive', label: 'createCheckpointArchive', run: () => ours(ctx, { op: 'archive', path: dir, out: join(out, `many-files-${Date.now()}.tar.gz`) }) },
      { key: 'dry-run', label: 'uploadDirectory, dryRun', run: () => ours(ctx, { ...job, dryRun: true }) },
    ];
    const sides: Record<string, SideResult> = {};
    try {
      for (const mode of modes) {
        mkdirSync(out, { recursive: true });
        sides[mode.key] = (await compareSides([{ key: 'ours', label: mode.label, run: mode.run }], 1, ctx.log)).ours!;
        rmSync(out, { recursive: true, force: true });
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    return {
      name: 'rss-20k',
      title: 'peak RSS, a directory of many small files',
      workload: `${count} × 1 KiB`,
      server: 'mlflow server, local artifacts; file: store; local disk',
      bytes: count * KiB,
      sides,
      checks: modes.map((mode) => rssCheck(mode.label, mode.key, sides[mode.key]!, 150)),
      notes: [],
    };
  },
};

const rss2g: Scenario = {
  name: 'rss-2g',
  servers: ['plain'],
  // The upload's file is written first and removed before the checkpoint is (a full run would
  // otherwise hold 4 GiB at once); a quick run makes both up front.
  prepare: (ctx) => (ctx.quick ? Promise.all([rssFile(ctx), rssCheckpoint(ctx)]) : rssFile(ctx)),
  async run(ctx) {
    const server = ctx.servers.plain!;
    const size = sized(ctx, 2 * GiB);
    let upload: Record<string, SideResult>;
    let archive: Record<string, SideResult>;
    try {
      const file = await rssFile(ctx);
      upload = await compareSides(
        [{ key: 'ours', label: 'ArtifactUploader.uploadFile', run: () => withRun(ctx, server, (runId) => ours(ctx, { op: 'file', trackingUri: server.url, runId, path: file })) }],
        1,
        ctx.log,
      );
      await ctx.data.remove('rss-file');
      const checkpoint = await rssCheckpoint(ctx);
      const out = join(ctx.work, 'rss-out', 'ckpt.tar.gz');
      archive = await compareSides([{ key: 'ours', label: 'createCheckpointArchive', run: () => ours(ctx, { op: 'archive', path: checkpoint, out }) }], 1, ctx.log);
    } finally {
      await Promise.all([ctx.data.remove('rss-file'), ctx.data.remove('rss-checkpoint')]);
      rmSync(join(ctx.work, 'rss-out'), { recursive: true, force: true });
    }
    return {
      name: 'rss-2g',
      title: 'peak RSS, upload and archive',
      workload: `1 × ${fmtBytes(size)} upload; ${fmtBytes(size)} checkpoint archive`,
      server: 'mlflow server, local artifacts',
      bytes: size,
      sides: { upload: upload.ours!, archive: archive.ours! },
      // Issue 18's bounds (issue 7 had 150 and 200 MiB): the whole process, import included.
      checks: [rssCheck('uploadFile', 'upload', upload.ours!, 100), rssCheck('createCheckpointArchive', 'archive', archive.ours!, 120)],
      notes: [],
    };
  },
};

const archive: Scenario = {
  name: 'archive',
  servers: [],
  prepare: (ctx) => archiveCheckpoint(ctx),
  async run(ctx) {
    const size = sized(ctx, GiB);
    const checkpoint = await archiveCheckpoint(ctx);
    const out = join(ctx.work, 'archive-out');
    mkdirSync(out, { recursive: true });
    const results = await compareSides(
      [
        { key: 'ours', label: 'createCheckpointArchive (gzip level 1, sha256 manifest)', run: () => ours(ctx, { op: 'archive', path: checkpoint, out: join(out, 'ours.tar.gz') }) },
        { key: 'tar', label: 'tar czf (gzip -6)', run: () => runChild('tar', ['czf', join(out, 'tar.tar.gz'), '-C', checkpoint, '.'], { wholeProcess: true }) },
      ],
      ctx.rounds,
      ctx.log,
    ).finally(async () => {
      rmSync(out, { recursive: true, force: true });
      await ctx.data.remove('archive-checkpoint');
    });
    return {
      name: 'archive',
      title: 'checkpoint archive',
      workload: `${fmtBytes(size)} checkpoint-like dir`,
      server: 'local disk',
      bytes: size,
      sides: results,
      checks: [ratioCheck(results, 'tar', 1.0)],
      notes: [],
    };
  },
};

const hubPublish: Scenario = {
  name: 'hub-publish',
  servers: [],
  linkable: true,
  prepare: (ctx) => Promise.all([hubModel(ctx), ctx.peers.warm('hub', hubEnv(ctx))]),
  async run(ctx) {
    const size = sized(ctx, GiB);
    const smallFiles = 500;
    const dir = await hubModel(ctx);
    let repo = 0;
    const onHub = async (fn: (hub: { url: string; token: string }, repoId: string) => Promise<Measurement>) => {
      // A fresh fake Hub per measurement: it holds uploads in memory.
      const hub = await startFakeHubProcess(ctx.scripts.fakeHub);
      let proxy: LatencyProxy | undefined;
      try {
        // Through a link, a proxy of its own in front of each fresh Hub. The LFS upload URLs the
        // Hub hands out are built from the Host header the client sent, so the parts cross it too.
        if (ctx.link) proxy = await startLatencyProxy(hub.url, linkProxyOptions(ctx.link));
        return await withServerCpu([hub.pid], () => fn({ url: proxy?.url ?? hub.url, token: hub.token }, `tester/bench-${++repo}`));
      } finally {
        await proxy?.close();
        await hub.stop();
      }
    };
    const env = hubEnv(ctx);
    const results = await compareSides(
      [
        { key: 'ours', label: 'publishToHub', run: () => onHub((hub, repoId) => ours(ctx, { op: 'publish', path: dir, repoId, hubUrl: hub.url, token: hub.token }, env)) },
        { key: 'python', label: 'HfApi().upload_folder (HF_HUB_DISABLE_XET=1)', run: () => onHub((hub, repoId) => peer(ctx, 'hub', { op: 'upload_folder', path: dir, repoId, hubUrl: hub.url, token: hub.token }, env)) },
      ],
      ctx.rounds,
      ctx.log,
    ).finally(() => ctx.data.remove('hub-model'));
    return {
      name: 'hub-publish',
      title: 'publish a model to a local Hub',
      workload: `${fmtBytes(size)} weights + ${smallFiles} small files`,
      server: `fake Hub (test/support/fake-hub), own process${throughLink(ctx)}`,
      bytes: size,
      sides: results,
      checks: [ratioCheck(results, 'python', 1.1)],
      notes: [],
    };
  },
};

const cliStart: Scenario = {
  name: 'cli-start',
  servers: [],
  prepare: async () => {},
  async run(ctx) {
    const results = await compareSides(
      [
        { key: 'ours', label: 'artifact-uploader --version', run: () => runChild(process.execPath, [ctx.scripts.cli, '--version'], { wholeProcess: true, cwd: ctx.work }) },
        { key: 'python', label: 'python -c "import mlflow"', run: () => runChild(ctx.python, ['-c', 'import mlflow'], { wholeProcess: true, cwd: ctx.work }) },
      ],
      ctx.quick ? ctx.rounds : Math.max(5, ctx.rounds),
      ctx.log,
    );
    return {
      name: 'cli-start',
      title: 'CLI cold start',
      workload: 'process start to exit',
      server: 'no server',
      sides: results,
      checks: [ratioCheck(results, 'python', 5, 'issue: ours ≤ 0.2× python, i.e. ratio ≥ 5×')],
      notes: [],
    };
  },
};

/** The cost of `import('artifact-uploader')`: the built package's ESM entry vs bare `node -e ''`. */
const importCost: Scenario = {
  name: 'import',
  servers: [],
  prepare: async () => {},
  async run(ctx) {
    const entry = pathToFileURL(join(ctx.scripts.cli, '..', 'index.js')).href;
    const node = (code: string) => runChild(process.execPath, ['--input-type=module', '-e', code], { wholeProcess: true, cwd: ctx.work });
    const rounds = ctx.quick ? Math.max(3, ctx.rounds) : Math.max(7, ctx.rounds);
    const results = await compareSides(
      [
        { key: 'ours', label: `node -e "await import('artifact-uploader')"`, run: () => node(`await import(${JSON.stringify(entry)});`) },
        { key: 'bare', label: `node -e ''`, run: () => node('') },
      ],
      rounds,
      ctx.log,
    );
    const perRound = (pick: (side: SideResult, i: number) => number | null): number | null => {
      const deltas: number[] = [];
      for (let i = 0; i < results.ours!.ms.length; i++) {
        const a = pick(results.ours!, i);
        const b = pick(results.bare!, i);
        if (a !== null && b !== null) deltas.push(a - b);
      }
      return deltas.length > 0 ? Math.round(median(deltas) * 10) / 10 : null;
    };
    const addedMs = perRound((side, i) => side.ms[i]!);
    const addedMiB = perRound((side, i) => side.rssMiB[i] ?? null);
    const check = (what: 'time' | 'rss', added: number | null, limit: number, unit: 'ms' | 'MiB'): Check => ({
      kind: 'overhead',
      vs: 'bare',
      what,
      added,
      limit,
      unit,
      met: added === null ? null : added <= limit,
    });
    return {
      name: 'import',
      title: 'import cost of the package',
      workload: 'process start to exit',
      server: 'no server',
      sides: results,
      checks: [check('time', addedMs, 60, 'ms'), check('rss', addedMiB, 15, 'MiB')],
      notes: [],
    };
  },
};

const rssFile = (ctx: BenchContext) => ctx.data.randomFile('rss-file', 'big.bin', sized(ctx, 2 * GiB));
const rssCheckpoint = (ctx: BenchContext) => ctx.data.checkpoint('rss-checkpoint', sized(ctx, 2 * GiB));
const archiveCheckpoint = (ctx: BenchContext) => ctx.data.checkpoint('archive-checkpoint', sized(ctx, GiB));
const hubModel = (ctx: BenchContext) => ctx.data.hubModel('hub-model', sized(ctx, GiB), 500);

export const SCENARIOS: readonly Scenario[] = [
  singleFile('single-1g', 'plain'),
  singleFile('single-1g-s3', 'direct'),
  manySmall('many-small', 'plain'),
  manySmall('many-small-s3', 'direct'),
  mpu1g,
  resume,
  rss2g,
  rss20k,
  archive,
  hubPublish,
  cliStart,
  importCost,
];
