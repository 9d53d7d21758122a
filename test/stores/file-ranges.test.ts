/**
 * The shared part loop (`sendFileRanges`) with an adaptive limit: a real file on disk, parts
 * "sent" to a simulated link on a simulated clock (each part finishes `duration(inFlight)` ms
 * after it started), so growth, the byte budget and throttling are decided by the loop's own
 * rules, never by how busy the machine is. The stores' tests send the same loop's parts to moto
 * and the MLflow server.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdaptiveLimit } from '../../src/core/adaptive-limit.js';
import { ByteBudget } from '../../src/core/byte-budget.js';
import { PART_GROWTH_FACTOR, RangeStop, sendFileRanges } from '../../src/stores/file-ranges.js';
import { OrderedSha256 } from '../../src/stores/ordered-sha256.js';
import type { SourceFile } from '../../src/stores/source-file.js';

const KiB = 1024;
const RANGE = 64 * KiB;
const RANGES = 120;

let dir: string;
let data: Buffer;
let path: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'file-ranges-'));
  data = randomBytes(RANGE * RANGES - 1000); // the last range is short
  path = join(dir, 'data.bin');
  await writeFile(path, data);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  /** The bytes that arrived, put together by range index. */
  received: Buffer;
  /** Most ranges in flight at once. */
  maxInFlight: number;
  /** Most ranges in flight among those started after the throttling answer and the first `initial`. */
  maxInFlightAfterThrottle: number;
  budget: ByteBudget;
  limit: AdaptiveLimit;
}

/**
 * Sends the file through `sendFileRanges` to a simulated link: the driver advances the clock to
 * the earliest unfinished range, finishes it, and lets the loop start the next ones.
 */
async function sendSimulated(options: {
  initial: number;
  max: number;
  duration: (inFlight: number) => number;
  budgetBytes?: number;
  throttleAt?: number;
  hasher?: OrderedSha256;
}): Promise<Run> {
  const clock = { t: 0 };
  const limit = new AdaptiveLimit({ initial: options.initial, max: options.max, growthFactor: PART_GROWTH_FACTOR, now: () => clock.t });
  const budget = new ByteBudget(options.budgetBytes ?? 1024 * 1024 * 1024);
  const stop = new RangeStop();
  const handle = await open(path, 'r');
  // Reads are real I/O: counted, so the driver only moves the clock once none is under way.
  let reading = 0;
  const counted = {
    read: (buffer: Buffer, offset: number, length: number, position: number) => {
      reading++;
      return handle.read(buffer, offset, length, position).finally(() => reading--);
    },
  } as unknown as FileHandle;
  const source: SourceFile = { handle: counted, path, size: data.length };
  const pieces: Buffer[] = [];
  const pending: Array<{ at: number; done: () => void }> = [];
  let inFlight = 0;
  let started = 0;
  let maxInFlight = 0;
  let maxInFlightAfterThrottle = 0;
  try {
    const sending = sendFileRanges(source, stop, {
      rangeSize: RANGE,
      concurrency: limit,
      budget,
      hasher: options.hasher,
      send: (index, body) => {
        pieces[index] = Buffer.from(body); // the body is only valid until the send resolves
        inFlight++;
        started++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        if (options.throttleAt !== undefined) {
          if (started === options.throttleAt) stop.throttled();
          if (started > Math.max(options.throttleAt, options.initial)) maxInFlightAfterThrottle = Math.max(maxInFlightAfterThrottle, inFlight);
        }
        return new Promise<void>((resolve) => pending.push({ at: clock.t + options.duration(inFlight), done: resolve }));
      },
    });
    // Lets the loop start what it can: every read done, and the turns after them run.
    const settle = async () => {
      for (let quiet = 0; quiet < 3; ) {
        await new Promise((r) => setImmediate(r));
        if (reading > 0) {
          quiet = 0;
          await new Promise((r) => setTimeout(r, 1));
        } else quiet++;
      }
    };
    await settle();
    while (pending.length > 0) {
      pending.sort((a, b) => a.at - b.at);
      const next = pending.shift()!;
      clock.t = next.at;
      inFlight--;
      next.done();
      await settle();
    }
    await sending;
  } finally {
    await handle.close();
  }
  return { received: Buffer.concat(pieces), maxInFlight, maxInFlightAfterThrottle, budget, limit };
}

describe('sendFileRanges with an adaptive limit', () => {
  it('grows while each range waits on the link (a round trip per range), and every byte arrives in place', async () => {
    const hasher = new OrderedSha256(data.length);
    const run = await sendSimulated({ initial: 4, max: 16, duration: () => 80, hasher });
    expect(run.received.equals(data)).toBe(true);
    expect(run.limit.peak).toBe(16);
    expect(run.maxInFlight).toBe(16);
    // The in-order sha256 came from the same buffers, however many were in flight.
    const handle = await open(path, 'r');
    try {
      expect(await hasher.digest({ handle, path, size: data.length })).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await handle.close();
    }
    // Every buffer went back to the budget.
    expect(run.budget.held).toBe(0);
  });

  it('stays near where it started when the server is the limit (more in flight only queues)', async () => {
    // Throughput is fixed: each range takes longer the more are in flight.
    const run = await sendSimulated({ initial: 4, max: 16, duration: (n) => 10 * n });
    expect(run.received.equals(data)).toBe(true);
    expect(run.limit.limit).toBe(4);
    expect(run.maxInFlight).toBe(6); // one step up (by half), measured, then back
  });

  it('keeps buffers beyond the starting number within the byte budget, and the limit at what the budget allows', async () => {
    const run = await sendSimulated({ initial: 4, max: 16, duration: () => 80, budgetBytes: 7 * RANGE });
    expect(run.received.equals(data)).toBe(true);
    expect(run.budget.peak).toBeLessThanOrEqual(7 * RANGE);
    expect(run.maxInFlight).toBe(7);
    expect(run.limit.limit).toBe(7);
    expect(run.budget.held).toBe(0);
  });

  it('always has its starting buffers, even with the budget spent by others', async () => {
    const run = await sendSimulated({ initial: 3, max: 16, duration: () => 80, budgetBytes: 0 });
    expect(run.received.equals(data)).toBe(true);
    expect(run.maxInFlight).toBe(3);
    expect(run.budget.peak).toBe(3 * RANGE);
  });

  it('halves on a throttling answer and grows no more', async () => {
    const run = await sendSimulated({ initial: 8, max: 16, duration: () => 80, throttleAt: 3 });
    expect(run.received.equals(data)).toBe(true);
    expect(run.limit.limit).toBe(4);
    expect(run.limit.peak).toBe(8);
    expect(run.maxInFlight).toBe(8);
    // The ranges in flight at the answer finish; no new one starts until fewer than 4 are left.
    expect(run.maxInFlightAfterThrottle).toBe(4);
  });

  it('keeps a number fixed: never more in flight however the link behaves', async () => {
    const run = await sendSimulated({ initial: 5, max: 5, duration: () => 80 });
    expect(run.received.equals(data)).toBe(true);
    expect(run.maxInFlight).toBe(5);
    expect(run.limit.peak).toBe(5);
  });
});

describe('sendFileRanges with ranges the server already holds', () => {
  // A part-level resume keeps the parts S3 stored for a killed attempt (`'held'`): they are read
  // and hashed as any other, count as loaded, and are not requests the limit measures.
  it.each([
    ['a fresh upload (hashed in turn)', new Set<number>()],
    ['a resumed one (kept ranges hashed by a reader of its own)', new Set([0, 1])],
  ])('%s: a range whose send resolves held is hashed and counted as loaded, not measured', async (_name, skip) => {
    const held = new Set([2, 3, 7]);
    const limit = new AdaptiveLimit({ initial: 4, max: 4, growthFactor: PART_GROWTH_FACTOR });
    const completed = vi.spyOn(limit, 'completed');
    const hasher = new OrderedSha256(data.length);
    const sent: number[] = [];
    let loaded = 0;
    const handle = await open(path, 'r');
    try {
      const source = { handle, path, size: data.length };
      await sendFileRanges(source, new RangeStop(), {
        rangeSize: RANGE,
        concurrency: limit,
        hasher,
        skip,
        alreadyLoaded: skip.size * RANGE,
        onProgress: (n) => (loaded = n),
        send: async (index, body) => {
          expect(body.equals(data.subarray(index * RANGE, (index + 1) * RANGE))).toBe(true);
          if (held.has(index)) return 'held';
          sent.push(index);
        },
      });
      expect(await hasher.digest(source)).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await handle.close();
    }
    expect(loaded).toBe(data.length);
    expect(sent.sort((a, b) => a - b)).toEqual(Array.from({ length: RANGES }, (_, i) => i).filter((i) => !held.has(i) && !skip.has(i)));
    expect(completed).toHaveBeenCalledTimes(sent.length);
  });
});

describe('sendFileRanges checking the ranges the server already holds', () => {
  // A resumed upload keeps ranges an earlier attempt stored (`skip`); the file may have been
  // rewritten since without its size or mtime showing it, so each kept range is checked, from
  // the bytes the reader reads for the sha256 anyway, before the caller commits.
  const skip = new Set([0, 1, 5, RANGES - 1]); // the last one is short
  const md5 = (b: Buffer) => createHash('md5').update(b).digest();
  const rangeOf = (index: number) => data.subarray(index * RANGE, (index + 1) * RANGE);

  async function sendChecking(check: (index: number, digest: Buffer) => void, stop = new RangeStop()) {
    const hasher = new OrderedSha256(data.length);
    const handle = await open(path, 'r');
    try {
      await sendFileRanges({ handle, path, size: data.length }, stop, {
        rangeSize: RANGE,
        concurrency: 4,
        hasher,
        skip,
        send: async () => undefined,
        checkSkipped: (index) => ({ checksum: createHash('md5'), check: (digest) => check(index, digest) }),
      });
      return await hasher.digest({ handle, path, size: data.length });
    } finally {
      await handle.close();
    }
  }

  it('checks every kept range, whole, by the checksum of its bytes in the file, and the sha256 is the whole file', async () => {
    const checked = new Map<number, Buffer>();
    const sha256 = await sendChecking((index, digest) => void checked.set(index, digest));
    expect([...checked.keys()].sort((a, b) => a - b)).toEqual([...skip].sort((a, b) => a - b));
    for (const [index, digest] of checked) expect(digest.equals(md5(rangeOf(index))), `range ${index}`).toBe(true);
    expect(sha256).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('stops the ranges when a kept range fails its check, and throws what the check threw', async () => {
    const stop = new RangeStop();
    const changed = new Error('range 5 is not what the server holds');
    await expect(
      sendChecking((index) => {
        if (index === 5) throw changed;
      }, stop),
    ).rejects.toBe(changed);
    expect(stop.stopped).toBe(true);
  });

  it('refuses a check without the hasher whose reader would run it', async () => {
    const handle = await open(path, 'r');
    try {
      await expect(
        sendFileRanges({ handle, path, size: data.length }, new RangeStop(), {
          rangeSize: RANGE,
          concurrency: 4,
          skip,
          send: async () => undefined,
          checkSkipped: () => ({ checksum: createHash('md5'), check: () => undefined }),
        }),
      ).rejects.toThrow(/checkSkipped needs a hasher/);
    } finally {
      await handle.close();
    }
  });
});
