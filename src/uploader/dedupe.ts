/**
 * Uploads of the same artifact to the same run that overlap in time happen once. In an HPO
 * sweep two trials can report the same best checkpoint at the same moment; uploading it twice
 * wastes the bandwidth and races two writers on one object. The first caller uploads; every
 * caller that arrives while it is in flight waits for it and gets its result.
 *
 * The map of uploads in flight is process-wide (on `globalThis` under a registered symbol), so
 * two uploader instances, and the ESM and CJS builds loaded side by side, share it. An entry
 * lives only while its upload runs: a later upload of the same file uploads again.
 *
 * Different uploads to one archive destination (two trials reporting different best checkpoints
 * at once) are not joined but queued ({@link oneDestinationAtATime}): each writes an archive and
 * then its manifest, and interleaved, the run kept one trial's archive beside the other's manifest.
 * The queue orders the calls of this process without touching the disk; other processes sharing
 * the journal directory are kept apart by a lock file around each turn (destination-lock.ts).
 *
 * @module
 */
import { createHash } from '../core/node-crypto.js';
import { waitUnlessAborted } from '../core/abort.js';
import { AbortedError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';

const MAP_KEY = Symbol.for('artifact-uploader.in-flight-uploads.v1');

function inFlight(): Map<string, Promise<unknown>> {
  const holder = globalThis as Record<symbol, Map<string, Promise<unknown>> | undefined>;
  holder[MAP_KEY] ??= new Map();
  return holder[MAP_KEY];
}

/** One local file as it was when planned: a changed file is a different upload. */
export interface LocalFileIdentity {
  localPath: string;
  artifactPath: string;
  size: number;
  mtimeMs: number;
}

/** What makes two uploads "the same". */
export interface UploadIdentity {
  /** The tracking server or store (connection display URI). */
  trackingUri: string;
  runId: string;
  artifactUri: string;
  /** The operation (`uploadFile`, `uploadCheckpointArchive`, ...) and the options that change its outcome. */
  operation: string;
  /** Destination of the operation. */
  artifactPath: string;
  /** The local files (or, for an archive built from a directory, the directory's files). */
  files: readonly LocalFileIdentity[];
}

/**
 * A compact key for an identity (a hash: directories can hold many thousands of files).
 *
 * @example
 * ```ts
 * const key = identityKey({ trackingUri, runId, artifactUri, operation: 'uploadFile', artifactPath: 'a.txt', files });
 * ```
 * @internal
 */
export function identityKey(identity: UploadIdentity): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify([identity.trackingUri, identity.runId, identity.artifactUri, identity.operation, identity.artifactPath]));
  const files = [...identity.files].sort((a, b) => (a.artifactPath < b.artifactPath ? -1 : a.artifactPath > b.artifactPath ? 1 : 0));
  for (const f of files) hash.update(`\n${JSON.stringify([f.localPath, f.artifactPath, f.size, f.mtimeMs])}`);
  return hash.digest('hex');
}

/**
 * Runs `fn` unless an upload with the same key is in flight, in which case it waits for that
 * one instead. `joined` tells which happened. Registration is synchronous, so of two callers
 * that reach this point in the same tick the first always uploads.
 *
 * A caller that joined stops waiting as soon as its own `signal` fires (an {@link AbortedError}
 * rejects its call at once); the upload it joined goes on for the caller that started it.
 *
 * @example
 * ```ts
 * const { value, joined } = await dedupeInFlight(identityKey(identity), () => upload(), { signal });
 * ```
 * @internal
 */
export async function dedupeInFlight<T>(key: string, fn: () => Promise<T>, options: { signal?: AbortSignal } = {}): Promise<{ value: T; joined: boolean }> {
  const map = inFlight();
  const existing = map.get(key) as Promise<T> | undefined;
  if (existing) return { value: await waitUnlessAborted(existing, options.signal, 'The upload was aborted while it waited for an identical upload in flight.'), joined: true };
  const promise = fn();
  map.set(key, promise);
  try {
    return { value: await promise, joined: false };
  } finally {
    if (map.get(key) === promise) map.delete(key);
  }
}

const QUEUE_KEY = Symbol.for('artifact-uploader.destination-queue.v1');

/** The process-wide queue of uploads per destination (shared like the in-flight map). */
function destinationQueue(): SerialQueue {
  const holder = globalThis as Record<symbol, SerialQueue | undefined>;
  holder[QUEUE_KEY] ??= new SerialQueue();
  return holder[QUEUE_KEY];
}

/**
 * Runs `fn` once every earlier call of this process with the same `destination` has settled. An
 * archive and its manifest are two writes: two different archives to one path (two trials'
 * best checkpoints, reported at once) went archive, archive, manifest, manifest, and the run
 * could keep one trial's archive beside the other's manifest, both calls `uploaded` and
 * `verified`. In turn, the pair in the run is the last caller's, whole. `onWait` is called when
 * the call has to wait. A caller whose `signal` fires while it waits stops waiting at once
 * ({@link AbortedError}), and its `fn` is never run.
 *
 * @example
 * ```ts
 * const result = await oneDestinationAtATime(JSON.stringify([artifactUri, 'best.manifest.json']), () => upload(), { signal });
 * ```
 * @internal
 */
export async function oneDestinationAtATime<T>(destination: string, fn: () => Promise<T>, options: { signal?: AbortSignal; onWait?: () => void } = {}): Promise<T> {
  const { signal } = options;
  const queue = destinationQueue();
  const waits = queue.busy(destination);
  if (waits) options.onWait?.();
  const message = 'The upload was aborted while it waited for another upload to the same destination.';
  let turnCame!: () => void;
  const turn = new Promise<void>((resolve) => (turnCame = resolve));
  const task = queue.run(destination, () => {
    turnCame();
    return signal?.aborted ? Promise.reject(new AbortedError(message, { cause: signal.reason })) : fn();
  });
  // Only the wait ends early: once its turn came, `fn` honours the signal itself and is awaited
  // with its cleanup (a staged archive removed), so the call never returns before its work stops.
  if (waits) {
    // A call that stopped waiting still has its place in the queue: it rejects there, unread.
    task.catch(() => undefined);
    await waitUnlessAborted(turn, signal, message);
  }
  return task;
}

/**
 * Number of uploads in flight in this process (for tests and diagnostics).
 *
 * @example
 * ```ts
 * inFlightUploadCount(); // 0 when nothing is uploading
 * ```
 * @internal
 */
export function inFlightUploadCount(): number {
  return inFlight().size;
}
