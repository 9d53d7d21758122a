/**
 * The pull-based pool of `uploadPlannedFiles` (issue 18, memory of 20,000 files): files are
 * pulled one by one as room frees up, never queued up front. The store is a real
 * `LocalFileStore` whose `uploadFile` waits at a gate the test opens, so what is in flight at
 * any moment is known exactly (no timing involved).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AbortedError } from '../../src/core/errors.js';
import { LocalFileStore } from '../../src/stores/local-file-store.js';
import { AdaptiveConcurrency } from '../../src/uploader/concurrency.js';
import { planDirectory, type PlannedFile } from '../../src/uploader/plan.js';
import { uploadPlannedFiles } from '../../src/uploader/transfer.js';

interface Gate {
  open: () => void;
  fail: (error: Error) => void;
  promise: Promise<void>;
}

function gate(): Gate {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { open, fail, promise };
}

/** Lets every pending callback and microtask run (the pool pulls in `then` callbacks). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/**
 * Waits until `condition` holds: the store's file I/O (a temp file, an fsync, a rename) runs on
 * libuv's pool, which on a loaded CI machine can take seconds, so after a quick phase of event-
 * loop turns this sleeps in 10 ms steps. Bounded (about 45 s at most), and no assertion depends
 * on how long it took.
 */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !condition(); i++) await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 4_500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(condition()).toBe(true);
}

/** A real file store whose uploads each wait for their gate; records what started and what is in flight. */
function gatedStore(count: number) {
  const base = mkdtempSync(join(tmpdir(), 'au-pool-'));
  const src = join(base, 'src');
  const dest = join(base, 'artifacts');
  mkdirSync(src);
  // Same size, so the plan keeps name order: f00, f01, ...
  for (let i = 0; i < count; i++) writeFileSync(join(src, `f${String(i).padStart(2, '0')}.bin`), `file ${String(i).padStart(2, '0')}`);
  const real = new LocalFileStore({ artifactUri: pathToFileURL(dest).href });
  const gates = new Map<string, Gate>();
  const started: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const store = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop !== 'uploadFile') return Reflect.get(target, prop, receiver);
      return async (...args: Parameters<LocalFileStore['uploadFile']>) => {
        const artifactPath = args[1];
        started.push(artifactPath);
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        const g = gate();
        gates.set(artifactPath, g);
        try {
          await g.promise;
          return await target.uploadFile(...args);
        } finally {
          inFlight--;
        }
      };
    },
  });
  return {
    src,
    dest,
    store,
    started,
    gates,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

describe('uploadPlannedFiles: the pull-based pool', () => {
  it('starts no more than `concurrency` files, pulls the next one only when one finishes, and keeps plan order', async () => {
    const s = gatedStore(10);
    const plan = await planDirectory(s.src);
    const done: string[] = [];
    const result = uploadPlannedFiles(s.store, plan, { concurrency: 3, onFileDone: (o) => done.push(o.file.artifactPath) });
    await until(() => s.started.length === 3);
    await settle();
    // The pool starts them in plan order; each stats its file before it reaches the store, and
    // those stats may finish in any order, so the store sees the first three in some order.
    expect([...s.started].sort()).toEqual(['f00.bin', 'f01.bin', 'f02.bin']);
    // The last of the three finishes first: exactly one more is pulled, the next in plan order.
    s.gates.get('f02.bin')!.open();
    await until(() => s.started.length === 4);
    await settle();
    expect(s.started.slice(3)).toEqual(['f03.bin']);
    expect(s.inFlight).toBe(3);
    // Finish the rest newest first, so completion order is far from plan order.
    for (let opened = 1; opened < 10; opened++) {
      const waiting = [...s.gates.keys()].filter((name) => !done.includes(name) && name !== 'f02.bin');
      const before = done.length;
      s.gates.get(waiting.at(-1)!)!.open();
      await until(() => done.length === before + 1 && (s.started.length === 10 || s.inFlight === 3));
      expect(s.inFlight).toBeLessThanOrEqual(3);
    }
    const outcomes = await result;
    expect(s.maxInFlight).toBe(3);
    expect(done).not.toEqual(plan.files.map((f) => f.artifactPath));
    expect(outcomes.map((o) => o.file)).toEqual(plan.files);
    expect(outcomes.map((o) => o.status)).toEqual(Array(10).fill('uploaded'));
    for (const f of plan.files) expect(readFileSync(join(s.dest, f.artifactPath), 'utf8')).toBe(readFileSync(f.localPath, 'utf8'));
  });

  it('a failed file does not stop the pulling: the others are still sent, each with its own outcome', async () => {
    const s = gatedStore(4);
    const plan = await planDirectory(s.src);
    const result = uploadPlannedFiles(s.store, plan, { concurrency: 2 });
    await until(() => s.started.length === 2);
    s.gates.get('f00.bin')!.fail(new Error('disk on fire'));
    await until(() => s.started.length === 3);
    expect([...s.started].sort()).toEqual(['f00.bin', 'f01.bin', 'f02.bin']);
    s.gates.get('f01.bin')!.open();
    await until(() => s.started.length === 4);
    s.gates.get('f02.bin')!.open();
    s.gates.get('f03.bin')!.open();
    const outcomes = await result;
    expect(outcomes.map((o) => o.status)).toEqual(['failed', 'uploaded', 'uploaded', 'uploaded']);
    expect((outcomes[0]!.error as Error).message).toBe('disk on fire');
  });

  it('an abort stops the pulling: files not started are never opened and come back cancelled, in plan order', async () => {
    const s = gatedStore(6);
    const plan = await planDirectory(s.src);
    const controller = new AbortController();
    const result = uploadPlannedFiles(s.store, plan, { concurrency: 2, signal: controller.signal });
    await until(() => s.started.length === 2);
    await settle();
    expect([...s.started].sort()).toEqual(['f00.bin', 'f01.bin']);
    controller.abort();
    // The two in flight finish (a real store would be cancelled by the signal; these were let through).
    s.gates.get('f00.bin')!.open();
    s.gates.get('f01.bin')!.open();
    const outcomes = await result;
    expect([...s.started].sort()).toEqual(['f00.bin', 'f01.bin']);
    expect(outcomes.map((o) => o.file.artifactPath)).toEqual(plan.files.map((f) => f.artifactPath));
    expect(outcomes.slice(2).map((o) => o.status)).toEqual(Array(4).fill('cancelled'));
    for (const o of outcomes.slice(2)) expect(o.error).toBeInstanceOf(AbortedError);
  });
});

describe('AdaptiveConcurrency.pool', () => {
  const items = (n: number): PlannedFile[] => Array.from({ length: n }, (_, i) => ({ localPath: `/x/${i}`, artifactPath: String(i), size: 1024 }));

  it('creates a task only when there is room: never more than the limit exist at once', async () => {
    const limit = new AdaptiveConcurrency({ initial: 4, max: 4 });
    const gates: Gate[] = [];
    const result = limit.pool(items(50), (f) => f.size, async (f) => {
      const g = gate();
      gates.push(g);
      await g.promise;
      return f.artifactPath;
    });
    await settle();
    expect(gates).toHaveLength(4);
    let opened = 0;
    while (opened < 50) {
      gates[opened++]!.open();
      await settle();
      expect(gates.length - opened).toBeLessThanOrEqual(4);
    }
    expect(await result).toEqual(items(50).map((f) => f.artifactPath));
  });

  it('stops pulling on a task that throws, lets those in flight settle, then rejects with the first error', async () => {
    const limit = new AdaptiveConcurrency({ initial: 3, max: 3 });
    const gates: Gate[] = [];
    let settledInFlight = 0;
    const result = limit.pool(items(20), (f) => f.size, async () => {
      const g = gate();
      gates.push(g);
      await g.promise;
      settledInFlight++;
    });
    const outcome = result.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    await settle();
    gates[1]!.fail(new Error('first'));
    await settle();
    expect(gates).toHaveLength(3);
    gates[2]!.fail(new Error('second'));
    gates[0]!.open();
    expect(await outcome).toBe('first');
    expect(gates).toHaveLength(3);
    expect(settledInFlight).toBe(1);
  });

  it('resolves with no items at once, and follows a throttled (halved) limit', async () => {
    const limit = new AdaptiveConcurrency({ initial: 4, max: 4 });
    expect(await limit.pool([], () => 0, async () => 1)).toEqual([]);
    const gates: Gate[] = [];
    const result = limit.pool(items(12), (f) => f.size, async (_f, index) => {
      const g = gate();
      gates.push(g);
      await g.promise;
      return index;
    });
    await settle();
    expect(gates).toHaveLength(4);
    limit.throttled();
    // Two of the four finish: at the halved limit (2), the two still in flight leave no room.
    gates[0]!.open();
    gates[1]!.open();
    await settle();
    expect(gates).toHaveLength(4);
    gates[2]!.open();
    await settle();
    expect(gates).toHaveLength(5);
    for (let i = 3; i < 12; i++) {
      gates[i]!.open();
      await settle();
    }
    expect(await result).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });
});
