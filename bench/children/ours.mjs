// One measured operation of the library, in its own process, through the BUILT package
// (dist/), exactly what users install. Usage: node ours.mjs '<json job>'.
// Prints `BENCH_RESULT {"ms":...}`: the time of the operation alone (module loading excluded;
// cli-start measures that).
import { performance } from 'node:perf_hooks';

const job = JSON.parse(process.argv[2] ?? '{}');
const lib = await import(new URL('../../dist/index.js', import.meta.url).href);

async function uploadWithUploader() {
  // `fileStore`: a run of a fresh `file:` store (./mlruns) made first; `dryRun`: plan only, no run.
  const run = job.fileStore ? await lib.startRun({ trackingUri: `file:${job.fileStore}`, activate: false }) : undefined;
  const target = job.dryRun ? { dryRun: true } : run ? { runId: run.runId, trackingUri: `file:${job.fileStore}` } : { runId: job.runId, trackingUri: job.trackingUri };
  const uploader = new lib.ArtifactUploader({ stage: 'training', ...target });
  try {
    const result =
      job.op === 'file'
        ? await uploader.uploadFile(job.path, { artifactPath: job.artifactPath })
        : await uploader.uploadDirectory(job.path, { artifactPath: job.artifactPath });
    if (result.status !== (job.dryRun ? 'skipped' : 'uploaded')) {
      throw new Error(`upload ${result.status} (${result.reason ?? ''}): ${result.error?.message ?? JSON.stringify(result.files.filter((f) => f.status !== 'uploaded').slice(0, 3))}`);
    }
    return { api: 'ArtifactUploader', files: result.files.length, bytes: result.metrics.bytesSent, attempts: result.metrics.attempts, multipart: result.files.some((f) => f.multipart) };
  } finally {
    await uploader.close?.();
  }
}

// Before src/uploader/ existed: the same path through the stores layer the uploader uses.
async function uploadWithStores() {
  const connection = lib.resolveMlflowConnection({ trackingUri: job.trackingUri });
  const run = await lib.createTrackingClient(connection).getRun(job.runId);
  const store = lib.resolveArtifactStore(run.info.artifactUri, { connection });
  if (job.op === 'file') {
    const name = job.path.split('/').pop();
    const r = await store.uploadFile(job.path, job.artifactPath ? `${job.artifactPath}/${name}` : name);
    return { api: 'stores', files: 1, bytes: r.bytes, attempts: r.attempts, multipart: r.multipart };
  }
  const plan = await lib.planDirectory(job.path, { artifactPath: job.artifactPath });
  const outcomes = await lib.uploadPlannedFiles(store, plan);
  const failed = outcomes.filter((o) => o.status !== 'uploaded');
  if (failed.length > 0) throw failed[0].error;
  return { api: 'stores', files: outcomes.length, bytes: plan.totalBytes, attempts: outcomes.reduce((n, o) => n + o.attempts, 0), multipart: outcomes.some((o) => o.multipart) };
}

async function archive() {
  const manifest = await lib.createCheckpointArchive(job.path, job.out);
  return { api: 'createCheckpointArchive', files: manifest.files.length, archiveBytes: manifest.archive?.size };
}

async function publish() {
  const result = await lib.publishToHub({ modelDir: job.path, repoId: job.repoId, hubUrl: job.hubUrl, accessToken: job.token });
  if (result.status !== 'published') throw new Error(`publish ${result.status}`);
  return { api: 'publishToHub', files: result.files.length, bytes: result.bytes };
}

const started = performance.now();
const cpuBefore = process.cpuUsage();
let details;
if (job.op === 'file' || job.op === 'dir') details = typeof lib.ArtifactUploader === 'function' ? await uploadWithUploader() : await uploadWithStores();
else if (job.op === 'archive') details = await archive();
else if (job.op === 'publish') details = await publish();
else throw new Error(`unknown op ${job.op}`);
const ms = performance.now() - started;
// CPU of the operation alone (user + system, every thread of the process: libuv's pool too).
const cpu = process.cpuUsage(cpuBefore);
const cpuMs = (cpu.user + cpu.system) / 1000;
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ ms, cpuMs, maxRssKiB: process.resourceUsage().maxRSS, ...details })}\n`);
