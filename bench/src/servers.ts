/**
 * The loopback servers a bench run talks to, started by the bench itself (never reused from a
 * test run): moto (S3), three `mlflow server`s (local artifacts, S3 proxy with multipart, and
 * `--no-serve-artifacts` with an `s3://` root), and the fake Hub in its own process. Both sides
 * of every scenario talk to the same server; all on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensurePythonEnv, venvBin } from '../../test/support/python-env.js';
import { startServer, waitForHttp, type ManagedProcess, type ServerSpec } from '../../test/support/processes.js';

export const BUCKET = 'mlflow-bench';
export const AWS_ENV = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_DEFAULT_REGION: 'us-east-1' };

/**
 * moto keeps an object or part in memory only up to `MOTO_S3_DEFAULT_KEY_BUFFER_SIZE` (5 MiB -
 * 1 KiB by default) and spills bigger ones to a temp file it reads back: every 8-10 MiB part, and
 * the 1 GiB object `CompleteMultipartUpload` joins them into. Those writes (28 GiB in a two-
 * scenario run) went to this machine's disk and page cache, and their kernel time to the two
 * cores both clients run on, and made moto's CPU per GiB swing from round to round with the
 * machine's writeback (real S3 spills nothing to the client's disk). Above the largest object the
 * bench stores on moto (1 GiB) nothing spills: moto's CPU fell by about a third and its spread
 * from up to 8 s/GiB to under 1 (single-1g-s3), the same for both clients
 * (docs/benchmarks-history.md, "`mpu-1g`: moto's CPU, and moto's objects in memory"). 64 MiB
 * (parts in memory, the object still spilled) did not help. Costs moto about 1 GiB more peak RSS
 * (6.0-6.3 GiB against 5.0-5.1).
 */
const MOTO_KEY_BUFFER_BYTES = 2 * 1024 ** 3;

export interface MlflowServer {
  /** Its address. Known once {@link BenchServers.ready} resolved: a port collision moves it. */
  url: string;
  /** Local artifacts destination (the `plain` server only). */
  artifactsDir?: string;
  /** Env both sides need to reach the bucket (s3 servers only); known when {@link startServers} returns. */
  env: Record<string, string>;
  /**
   * Process groups whose CPU counts as this server's (`server-cpu.ts`): its own, and moto's for
   * a server whose artifacts go to moto. Known once {@link BenchServers.ready} resolved.
   */
  cpuGroups: number[];
}

export interface BenchServers {
  python: string;
  /** Where the servers write their logs. */
  logDir: string;
  moto?: { endpoint: string; cpuGroups: number[] };
  plain?: MlflowServer;
  s3?: MlflowServer;
  direct?: MlflowServer;
  /**
   * Resolves when every server answers and is warmed up. moto and the servers' `env` are known
   * before that, so data and the Python imports can be prepared meanwhile; the MLflow servers'
   * `url` and `cpuGroups` only then.
   */
  ready: Promise<void>;
  /**
   * Starts one more server like `s3` (proxied artifacts and multipart to moto's bucket) that
   * reaches moto at `motoEndpoint` instead: a link's proxy in front of moto, so that the part
   * URLs it presigns (for that endpoint) send the parts across the link. Resolves once it
   * answers and is warmed up; `stop` ends it (and {@link stop} does, at the latest).
   */
  startS3Through(motoEndpoint: string): Promise<{ server: MlflowServer; stop(): Promise<void> }>;
  stop(): Promise<void>;
}

export type ServerName = 'plain' | 's3' | 'direct';

/**
 * Starts the servers and returns once moto answers (the others need its address); `ready` says
 * when the MLflow servers answer. Each is started by the test suite's `startServer`, which starts
 * it again on another port should the one it was given be taken meanwhile (by another checkout's
 * tests or bench). The fake Hub needs no such care: it listens on port 0.
 */
export async function startServers(root: string, wanted: ReadonlySet<ServerName>, log: (line: string) => void): Promise<BenchServers> {
  await ensurePythonEnv(log);
  const processes: ManagedProcess[] = [];
  const logDir = join(root, 'server-logs');
  const common = { logDir, log, onStart: (proc: ManagedProcess) => processes.push(proc) } satisfies Partial<ServerSpec>;
  let throughCount = 0;
  const servers: BenchServers = {
    python: venvBin('python'),
    logDir,
    ready: Promise.resolve(),
    startS3Through: async (motoEndpoint) => {
      const { server, started, stop } = startMlflow(`s3-through-${++throughCount}`, s3Args, { ...AWS_ENV, MLFLOW_S3_ENDPOINT_URL: motoEndpoint });
      try {
        await started;
        await warmUp(server.url);
      } catch (error) {
        await stop();
        throw error;
      }
      return { server, stop };
    },
    stop: async () => {
      // Nothing of theirs outlives the run (their data dir is removed, logs are already on
      // disk), so no graceful shutdown: uvicorn's takes seconds.
      for (const p of processes) {
        try {
          if (p.child.exitCode === null && p.child.signalCode === null) process.kill(-p.child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await Promise.all(processes.map((p) => p.stop()));
    },
  };
  // Every start settles before `ready` does (or this throws), so that none starts a server after `stop`.
  const starts: Array<Promise<void>> = [];
  // The `plain` server carries the bytes of single-1g, many-small and rss-2g: it runs with
  // MLflow's defaults (uvicorn, 4 workers), as a deployment would. The `s3` and `direct`
  // servers only answer run lookups and multipart bookkeeping (the bytes go to moto), so one
  // worker each keeps the bench's start-up short.
  const startMlflow = (name: ServerName | `s3-through-${number}`, args: string[], env: Record<string, string>, extra: Partial<MlflowServer> = {}) => {
    // uvicorn kills a worker that misses a 5 s health check, which a 2-core machine busy
    // flushing a gigabyte to disk can do: give them longer (it changes nothing else).
    args = name === 'plain' ? ['--uvicorn-opts', '--timeout-worker-healthcheck 120', ...args] : ['--workers', '1', ...args];
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const server: MlflowServer = { url: '', env, cpuGroups: [], ...extra };
    let proc: ManagedProcess | undefined;
    const started = startServer({
      ...common,
      name: `mlflow-${name}`,
      command: venvBin('mlflow'),
      args: (port) => ['server', '--host', '127.0.0.1', '--port', String(port), '--backend-store-uri', `sqlite:///${join(dir, 'mlflow.db')}`, ...args],
      ready: (port, proc) => waitForHttp(`http://127.0.0.1:${port}/health`, proc, 180_000),
      env: { MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false', ...env },
      cwd: dir,
    }).then((result) => {
      proc = result.proc;
      server.url = `http://127.0.0.1:${result.port}`;
      // Every server runs in its own process group, its watchdog's (startProcess spawns that detached).
      server.cpuGroups = [proc.child.pid!, ...(env.MLFLOW_S3_ENDPOINT_URL && servers.moto ? servers.moto.cpuGroups : [])];
    });
    started.catch(() => {}); // awaited through `ready`
    starts.push(started);
    return { server, started, stop: () => proc?.stop() ?? Promise.resolve() };
  };
  const s3Args = ['--serve-artifacts', '--artifacts-destination', `s3://${BUCKET}/proxied`];
  const settled = () => Promise.allSettled(starts);
  try {
    // `plain` starts at once; the `s3` and `direct` servers are given moto's address, so they
    // start once moto answers (MLflow does not touch the bucket before the first request).
    if (wanted.has('plain')) {
      const artifactsDir = join(root, 'plain', 'artifacts');
      servers.plain = startMlflow('plain', ['--serve-artifacts', '--artifacts-destination', artifactsDir], {}, { artifactsDir }).server;
    }
    if (wanted.has('s3') || wanted.has('direct')) {
      const { port, proc } = await startServer({
        ...common,
        name: 'moto',
        command: venvBin('moto_server'),
        args: (port) => ['-H', '127.0.0.1', '-p', String(port)],
        ready: (port, proc) => waitForHttp(`http://127.0.0.1:${port}/moto-api/`, proc, 60_000),
        env: { MOTO_S3_DEFAULT_KEY_BUFFER_SIZE: String(MOTO_KEY_BUFFER_BYTES) },
      });
      const endpoint = `http://127.0.0.1:${port}`;
      await createBucket(endpoint);
      servers.moto = { endpoint, cpuGroups: [proc.child.pid!] };
      const s3Env = { ...AWS_ENV, MLFLOW_S3_ENDPOINT_URL: endpoint };
      if (wanted.has('s3')) servers.s3 = startMlflow('s3', s3Args, s3Env).server;
      if (wanted.has('direct')) servers.direct = startMlflow('direct', ['--no-serve-artifacts', '--default-artifact-root', `s3://${BUCKET}/direct`], s3Env).server;
    }
  } catch (error) {
    await settled();
    await servers.stop();
    throw error;
  }
  servers.ready = (async () => {
    await settled();
    await Promise.all(starts);
    // uvicorn's workers load the artifact code (and boto3) on their first request: warm each
    // of them up, so neither side of the first round pays for it.
    await Promise.all([servers.plain, servers.s3].map((server) => (server ? warmUp(server.url) : undefined)));
  })();
  servers.ready.catch(() => {});
  return servers;
}

async function createBucket(endpoint: string): Promise<void> {
  const res = await benchFetch(`${endpoint}/${BUCKET}`, { method: 'PUT' });
  if (!res.ok) throw new Error(`creating bucket ${BUCKET} on moto failed: ${res.status} ${await res.text()}`);
}

async function warmUp(url: string): Promise<void> {
  const runId = await createRun(url);
  const body = Buffer.alloc(64 * 1024, 1);
  await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const res = await benchFetch(`${url}/api/2.0/mlflow-artifacts/artifacts/0/${runId}/artifacts/warm-up/${i}.bin`, { method: 'PUT', body });
      await res.arrayBuffer();
    }),
  );
}

/** Drops everything moto holds (the uploaded objects live in its memory) and recreates the bucket. */
export async function resetMoto(endpoint: string): Promise<void> {
  const res = await benchFetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
  if (!res.ok) throw new Error(`moto reset failed: ${res.status}`);
  await createBucket(endpoint);
}

/**
 * `fetch` for the bench's own bookkeeping requests: a fresh connection each time (a pooled one
 * may have been closed by uvicorn while the bench was writing a gigabyte), retried twice.
 */
async function benchFetch(url: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), connection: 'close' } });
    } catch (error) {
      if (attempt >= 3) throw new Error(`${init.method ?? 'GET'} ${url} failed: ${String((error as Error).cause ?? error)}`, { cause: error });
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

/** Creates a run on an MLflow server through the REST API; returns its id. */
export async function createRun(trackingUrl: string): Promise<string> {
  const res = await benchFetch(`${trackingUrl}/api/2.0/mlflow/runs/create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ experiment_id: '0', start_time: Date.now() }),
  });
  if (!res.ok) throw new Error(`runs/create failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { run: { info: { run_id: string; artifact_uri: string } } };
  return body.run.info.run_id;
}

/** Removes what a run stored on the `plain` server's disk (so 1 GiB copies do not pile up). */
export function removeRunArtifacts(server: MlflowServer, runId: string): void {
  if (server.artifactsDir) rmSync(join(server.artifactsDir, '0', runId), { recursive: true, force: true });
}

export interface FakeHubProcess {
  url: string;
  token: string;
  /** Its pid, for its CPU time (`server-cpu.ts`). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts the fake Hub (test/support/fake-hub) in a child process, so its work (hashing,
 * buffering parts) does not share the bench's event loop. One per measurement keeps memory flat.
 */
export async function startFakeHubProcess(script: string): Promise<FakeHubProcess> {
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`fake hub exited with ${code}`)));
  });
  const { url, token } = JSON.parse(first) as { url: string; token: string };
  return {
    url,
    token,
    pid: child.pid!,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
