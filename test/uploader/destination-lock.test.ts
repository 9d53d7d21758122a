/**
 * Archive uploads to one destination take turns across processes (uploader/destination-lock.ts):
 * trials run as separate processes of the built package, storing different best checkpoints to
 * `best_trial_checkpoint.tar.gz` of one `./mlruns` run at once, leave one trial's archive beside
 * its own manifest, every call verified; a lock whose holder was killed is broken by a waiter and
 * swept by the next journal; a call waiting for another process's lock stops at its signal.
 * Processes meet at real barriers (lines on their stdin, lines on their stdout): no timing.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CheckpointManifest } from '../../src/archive/manifest.js';
import { uploadHpoArtifacts } from '../../src/stages/hpo.js';
import { AbortedError } from '../../src/core/errors.js';
import { DESTINATION_LOCK_STALE_MS, DESTINATION_LOCKS_FOLDER, holdDestinationLock } from '../../src/uploader/destination-lock.js';
import { UploadJournal } from '../../src/uploader/journal.js';
import { assertBuilt, DIST_INDEX, FREEZE, startChild, type KillableChild } from '../support/child-node.js';
import { localRun, recordingLogger, scratch, sha256, wrappedStore, writeTree } from './helpers.js';

const ARCHIVE = 'best_trial_checkpoint.tar.gz';
const MANIFEST = 'best_trial_checkpoint.manifest.json';

beforeAll(() => assertBuilt());

/** A sweep of `trials` checkpoints of different sizes and bytes, one directory each. */
function sweepOf(trials: number): string {
  const files: Record<string, Buffer> = {};
  for (let t = 0; t < trials; t++) files[`trial-${t}/ckpt/adapter_model.safetensors`] = randomBytes(256 * 1024 + t * 4096);
  return writeTree(scratch('au-destlock-'), files);
}

/**
 * The script of a trial process: `uploadHpoArtifacts` of `$CKPT` to `$RUN` of `$TRACKING` with
 * journal `$JOURNAL`, from dist/. With `rounds`, it prints `ready`, then per round waits for a
 * line on stdin, uploads, and prints `result <json>` and `done <round>` (and its warnings as
 * `warn <message>`). With `hold`, it uploads once and runs `hold` when its archive's turn has
 * come (it holds the destination lock then), after printing `holding`, and prints
 * `result <json>` and `done` at the end.
 */
function trialScript(options: { rounds: number } | { hold: string }): string {
  const callOptions = (extra: string) =>
    `({ checkpointDir: process.env.CKPT, runId: process.env.RUN, trackingUri: process.env.TRACKING, journalDir: process.env.JOURNAL, env: {}${extra} })`;
  const lines = `
import { createInterface } from 'node:readline';
const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => (await input.next()).value;`;
  if ('rounds' in options) {
    return `
import { uploadHpoArtifacts } from ${JSON.stringify(pathToFileURL(DIST_INDEX).href)};
${lines}
console.log('ready');
for (let round = 0; round < ${options.rounds}; round++) {
  await nextLine();
  const r = await uploadHpoArtifacts(${callOptions(", logger: { debug() {}, info() {}, warn(m) { console.log('warn ' + m); }, error(m) { console.log('error ' + m); } }")});
  console.log('result ' + JSON.stringify({ round, status: r.status, reason: r.reason, code: r.error?.code, message: r.error?.message, verification: r.verification?.status, sha256: r.manifest?.archive.sha256 }));
  console.log('done ' + round);
}
process.exit(0);
`;
  }
  return `
import { resolveArtifactStore, uploadHpoArtifacts } from ${JSON.stringify(pathToFileURL(DIST_INDEX).href)};
${lines}
const resolveStore = (uri, o) => {
  const real = resolveArtifactStore(uri, o);
  return {
    kind: real.kind,
    artifactUri: real.artifactUri,
    describe: () => real.describe(),
    list: (d, x) => real.list(d, x),
    uploadFile: async (l, p, x) => {
      if (p.endsWith('.tar.gz')) { console.log('holding'); ${options.hold} }
      return real.uploadFile(l, p, x);
    },
  };
};
const r = await uploadHpoArtifacts(${callOptions(', resolveStore')});
console.log('result ' + JSON.stringify({ status: r.status, verification: r.verification?.status, sha256: r.manifest?.archive.sha256 }));
console.log('done');
process.exit(0);
`;
}

/** The `result` lines a trial process printed. */
function results(child: KillableChild): Array<Record<string, unknown>> {
  return child
    .output()
    .split('\n')
    .filter((l) => l.startsWith('result '))
    .map((l) => JSON.parse(l.slice('result '.length)) as Record<string, unknown>);
}

/** The manifest in the run, and whether the archive beside it is the one it describes. */
function storedPair(artifactsDir: string): { manifest: CheckpointManifest; matches: boolean } {
  const manifest = JSON.parse(readFileSync(join(artifactsDir, MANIFEST), 'utf8')) as CheckpointManifest;
  return { manifest, matches: sha256(readFileSync(join(artifactsDir, ARCHIVE))) === manifest.archive.sha256 };
}

/** What the journal's destination locks folder holds (`undefined`: no folder, as after a normal run). */
function destinationLocks(journal: string): string[] | undefined {
  const folder = join(journal, DESTINATION_LOCKS_FOLDER);
  return existsSync(folder) ? readdirSync(folder) : undefined;
}

/**
 * A fresh journal and where the lock of destination `'destination'` lives in it (the lock taken
 * once and let go, so that its name comes from the module and not from a copy of its hash).
 */
async function destinationLockPlace(): Promise<{ journal: string; folder: string; lockPath: string }> {
  const journal = join(scratch('au-destlock-journal-'), 'journal');
  const folder = join(journal, DESTINATION_LOCKS_FOLDER);
  const own = await holdDestinationLock(journal, 'destination');
  const [name] = readdirSync(folder);
  await own.release();
  return { journal, folder, lockPath: join(folder, name!) };
}

describe('archive uploads to one destination across processes', () => {
  it('8 trial processes storing different best checkpoints at once, 6 rounds: every call verified, and the run keeps one trial\'s archive with its own manifest', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const trials = 8;
    const rounds = 6;
    const sweep = sweepOf(trials);
    const journal = join(scratch('au-destlock-journal-'), 'journal');
    const children = Array.from({ length: trials }, (_, t) =>
      startChild(trialScript({ rounds }), { stdin: true, env: { CKPT: join(sweep, `trial-${t}/ckpt`), RUN: run.runId, TRACKING: trackingUri, JOURNAL: journal } }),
    );
    try {
      await Promise.all(children.map((c) => c.waitFor('ready')));
      for (let round = 0; round < rounds; round++) {
        // Every trial starts its upload at once, each round.
        for (const c of children) c.send('go');
        await Promise.all(children.map((c) => c.waitFor(`done ${round}`, 120_000)));
        const round_ = children.map((c) => results(c).find((r) => r.round === round)!);
        expect(round_.map((r) => [r.status, r.code ?? null, r.verification]), JSON.stringify(round_, null, 1)).toEqual(children.map(() => ['uploaded', null, 'verified']));
        const { manifest, matches } = storedPair(artifactsDir);
        expect(matches, `round ${round}: the archive in the run is not the one its manifest describes`).toBe(true);
        expect(round_.map((r) => r.sha256)).toContain(manifest.archive.sha256);
      }
      // No call went on without the lock (a warning says when one does).
      expect(children.flatMap((c) => c.output().split('\n').filter((l) => l.startsWith('warn ') || l.startsWith('error ')))).toEqual([]);
    } finally {
      await Promise.all(children.map((c) => c.kill()));
    }
    // Nothing left: no lock, no staged archive.
    expect(destinationLocks(journal)).toBeUndefined();
    expect(existsSync(join(journal, 'archives')) ? readdirSync(join(journal, 'archives')) : []).toEqual([]);
  });

  it('a process killed while it holds the lock: the call waiting for it breaks the lock and uploads, leaving no lock behind', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const sweep = sweepOf(2);
    const journal = join(scratch('au-destlock-journal-'), 'journal');
    const holder = startChild(trialScript({ hold: FREEZE }), { env: { CKPT: join(sweep, 'trial-0/ckpt'), RUN: run.runId, TRACKING: trackingUri, JOURNAL: journal } });
    try {
      await holder.waitFor('holding');
      const [lock] = destinationLocks(journal) ?? [];
      expect(JSON.parse(readFileSync(join(journal, DESTINATION_LOCKS_FOLDER, lock!), 'utf8'))).toMatchObject({ pid: holder.pid });
      const logger = recordingLogger();
      let waiting!: () => void;
      const waits = new Promise<void>((resolve) => (waiting = resolve));
      const upload = uploadHpoArtifacts({
        checkpointDir: join(sweep, 'trial-1/ckpt'),
        runId: run.runId,
        trackingUri,
        journalDir: journal,
        env: {},
        logger: { ...logger, info: (m) => (logger.info(m), m.includes("another process's upload") && waiting()) },
      });
      // It waits for the live holder; then the holder is killed (no finally of its runs).
      await Promise.race([waits, upload]);
      await holder.kill();
      const result = await upload;
      expect(result).toMatchObject({ status: 'uploaded', verification: { status: 'verified' } });
      expect(logger.lines).toContainEqual(['info', expect.stringMatching(/waits for another process's upload of an archive to best_trial_checkpoint\.tar\.gz of run [0-9a-f]+ to finish/)]);
      const { manifest, matches } = storedPair(artifactsDir);
      expect(matches).toBe(true);
      expect(manifest).toEqual(result.manifest);
      expect(destinationLocks(journal)).toBeUndefined();
    } finally {
      await holder.kill();
    }
  });

  it('a lock a killed process left, with nobody waiting, is removed by the sweep of the next journal opened', async () => {
    const { trackingUri, run } = await localRun();
    const sweep = sweepOf(1);
    const journal = join(scratch('au-destlock-journal-'), 'journal');
    const holder = startChild(trialScript({ hold: FREEZE }), { env: { CKPT: join(sweep, 'trial-0/ckpt'), RUN: run.runId, TRACKING: trackingUri, JOURNAL: journal } });
    try {
      await holder.waitFor('holding');
    } finally {
      await holder.kill();
    }
    expect(destinationLocks(journal)).toHaveLength(1);
    await UploadJournal.open({ dir: journal });
    expect(destinationLocks(journal)).toBeUndefined();
  });

  it('a call waiting for another process\'s lock ends aborted at its signal, sending nothing; a dry run does not wait; the holder\'s pair stays whole', async () => {
    const { trackingUri, run, artifactsDir } = await localRun();
    const sweep = sweepOf(2);
    const journal = join(scratch('au-destlock-journal-'), 'journal');
    const holder = startChild(trialScript({ hold: 'await nextLine();' }), { stdin: true, env: { CKPT: join(sweep, 'trial-0/ckpt'), RUN: run.runId, TRACKING: trackingUri, JOURNAL: journal } });
    try {
      await holder.waitFor('holding');
      // A dry run takes no lock: it returns its plan while the lock is held.
      const dry = await uploadHpoArtifacts({ checkpointDir: join(sweep, 'trial-1/ckpt'), runId: run.runId, trackingUri, journalDir: journal, env: {}, dryRun: true });
      expect(dry).toMatchObject({ status: 'skipped', reason: 'dry-run' });
      const controller = new AbortController();
      const logger = recordingLogger();
      let sent = 0;
      const result = await uploadHpoArtifacts({
        checkpointDir: join(sweep, 'trial-1/ckpt'),
        runId: run.runId,
        trackingUri,
        journalDir: journal,
        env: {},
        signal: controller.signal,
        logger: { ...logger, info: (m) => (logger.info(m), m.includes("another process's upload") && controller.abort(new Error('trial pruned'))) },
        resolveStore: wrappedStore((_p, upload) => (sent++, upload())),
      });
      expect(result).toMatchObject({ status: 'failed', reason: 'aborted', error: { name: 'AbortedError' } });
      expect(sent).toBe(0);
      // The holder goes on and finishes its pair; its lock goes with it.
      holder.send('release');
      await holder.waitFor('done');
      const [held] = results(holder);
      expect(held).toMatchObject({ status: 'uploaded', verification: 'verified' });
      const { manifest, matches } = storedPair(artifactsDir);
      expect(matches).toBe(true);
      expect(manifest.archive.sha256).toBe(held!.sha256);
      expect(destinationLocks(journal)).toBeUndefined();
    } finally {
      await holder.kill();
    }
  });

  it('a lock of another host is waited for while it is refreshed, and broken once not refreshed for DESTINATION_LOCK_STALE_MS', async () => {
    const { journal, folder, lockPath } = await destinationLockPlace();
    // Another host's holder (its pid means nothing here), refreshed a moment ago.
    const foreign = JSON.stringify({ pid: 1, host: 'another-host.invalid', token: 'f'.repeat(16) });
    mkdirSync(folder);
    writeFileSync(lockPath, foreign);
    const controller = new AbortController();
    let waits = 0;
    const waiting = holdDestinationLock(journal, 'destination', { signal: controller.signal, onWait: () => (waits++, controller.abort()) });
    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    expect(waits).toBe(1);
    expect(readFileSync(lockPath, 'utf8')).toBe(foreign);
    // Not refreshed for longer than the bound: abandoned, taken without waiting.
    const silentSince = new Date(Date.now() - DESTINATION_LOCK_STALE_MS - 60_000);
    utimesSync(lockPath, silentSince, silentSince);
    const taken = await holdDestinationLock(journal, 'destination', { onWait: () => waits++ });
    expect(waits).toBe(1);
    expect(JSON.parse(readFileSync(lockPath, 'utf8'))).toMatchObject({ pid: process.pid });
    await taken.release();
    expect(destinationLocks(journal)).toBeUndefined();
  });

  it('a lock of this process\'s pid is live when touched since the process started (another module instance or thread), a predecessor\'s when touched before', async () => {
    const { journal, folder, lockPath } = await destinationLockPlace();
    // Same pid and host, another token: another copy of the module (the CJS build beside the
    // ESM one, a worker thread) holds it now.
    const sameProcess = JSON.stringify({ pid: process.pid, host: hostname(), token: 'e'.repeat(16) });
    mkdirSync(folder);
    writeFileSync(lockPath, sameProcess);
    const controller = new AbortController();
    await expect(holdDestinationLock(journal, 'destination', { signal: controller.signal, onWait: () => controller.abort() })).rejects.toBeInstanceOf(AbortedError);
    expect(readFileSync(lockPath, 'utf8')).toBe(sameProcess);
    // Last touched before this process started: a predecessor's with the same pid (a restarted container).
    const beforeStart = new Date(Date.now() - process.uptime() * 1000 - 60_000);
    utimesSync(lockPath, beforeStart, beforeStart);
    let waited = false;
    const taken = await holdDestinationLock(journal, 'destination', { onWait: () => (waited = true) });
    expect(waited).toBe(false);
    expect(readFileSync(lockPath, 'utf8')).not.toBe(sameProcess);
    await taken.release();
    expect(destinationLocks(journal)).toBeUndefined();
  });
});
