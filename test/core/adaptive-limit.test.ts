/**
 * The measuring limit on its own, on a simulated clock: the file limiter
 * (test/uploader/concurrency.test.ts) and the part loop (test/stores/file-ranges.test.ts) test it
 * at work; this pins the steps, the throttle and the budget's counting.
 */
import { describe, expect, it } from 'vitest';
import { AdaptiveLimit, GAIN } from '../../src/core/adaptive-limit.js';
import { ByteBudget } from '../../src/core/byte-budget.js';

/** Starts `count` requests at once and completes them `msEach` later, all `count` in flight as each ends. */
function complete(limit: AdaptiveLimit, clock: { t: number }, count: number, msEach: number, bytes = 1): boolean[] {
  const startedAt = limit.started();
  clock.t += msEach;
  return Array.from({ length: count }, () => limit.completed(bytes, startedAt, count));
}

describe('AdaptiveLimit', () => {
  it('steps up by its growth factor (at least one) after each window that paid off, up to its maximum', () => {
    const clock = { t: 0 };
    const limit = new AdaptiveLimit({ initial: 4, max: 16, growthFactor: 1.25, now: () => clock.t });
    const seen = [limit.limit];
    // A link-bound request takes the same time however many are in flight: throughput grows with the limit.
    while (limit.adapting) {
      complete(limit, clock, limit.limit, 100);
      seen.push(limit.limit);
    }
    expect(seen).toEqual([4, 5, 7, 9, 12, 15, 16]);
    expect(limit.peak).toBe(16);
  });

  it('steps back and stops when a step up did not bring GAIN more throughput', () => {
    const clock = { t: 0 };
    const limit = new AdaptiveLimit({ initial: 4, max: 16, now: () => clock.t });
    expect(complete(limit, clock, 4, 10).at(-1)).toBe(true); // the first step is always taken
    expect(limit.limit).toBe(6);
    // A server-bound request takes longer the more are in flight: 6 at 15 ms is the same rate as 4 at 10.
    expect(GAIN).toBeGreaterThan(1);
    expect(complete(limit, clock, 6, 15).at(-1)).toBe(true);
    expect([limit.limit, limit.adapting, limit.peak]).toEqual([4, false, 6]);
  });

  it('measures a step only by the requests started after it, and by their mean time', () => {
    const clock = { t: 0 };
    const limit = new AdaptiveLimit({ initial: 4, max: 16, now: () => clock.t });
    const before = limit.started();
    clock.t += 100;
    // Three of the first four done (100 ms each), then the fourth: the window is full, the limit steps up to 6.
    expect([0, 1, 2, 3].map(() => limit.completed(1, before, 4)).at(-1)).toBe(true);
    expect(limit.limit).toBe(6);
    // Requests started before that step do not count toward the window at 6, however slow.
    const stale = before;
    clock.t += 400;
    expect([0, 1, 2, 3, 4, 5].map(() => limit.completed(1, stale, 6))).toEqual([false, false, false, false, false, false]);
    // Six started at 6 arrive in one clump, so the span between their completions says nothing; their
    // mean time (97.5 ms) says six in flight make half as much again as four did: the limit steps up again.
    const at6 = [0, 1, 2, 3, 4, 5].map(() => {
      const startedAt = limit.started();
      clock.t += 1;
      return startedAt;
    });
    clock.t += 95;
    const changed = at6.map((startedAt) => limit.completed(1, startedAt, 6));
    expect(changed.at(-1)).toBe(true);
    expect(limit.limit).toBe(9);
  });

  it('measures the number really in flight: a higher limit the caller cannot fill buys nothing', () => {
    const clock = { t: 0 };
    const limit = new AdaptiveLimit({ initial: 4, max: 16, now: () => clock.t });
    complete(limit, clock, 4, 100);
    expect(limit.limit).toBe(6);
    // Six windows' worth at the new limit, but something else (a memory budget) kept 4 in flight.
    const startedAt = limit.started();
    clock.t += 100;
    expect([0, 1, 2, 3, 4, 5].map(() => limit.completed(1, startedAt, 4)).at(-1)).toBe(true);
    expect([limit.limit, limit.adapting]).toEqual([4, false]);
  });

  it('halves on a throttling answer once per round of completions, and grows no more', () => {
    const limit = new AdaptiveLimit({ initial: 8, max: 8 });
    limit.throttled();
    limit.throttled(); // the requests in flight at the answer may all be told the same
    expect(limit.limit).toBe(4);
    complete(limit, { t: 0 }, 4, 1);
    limit.throttled();
    expect([limit.limit, limit.adapting]).toEqual([2, false]);
  });

  it('holds at what the caller could put in flight, and refuses a starting value below 1', () => {
    const limit = new AdaptiveLimit({ initial: 4, max: 16 });
    limit.holdAt(6);
    expect([limit.limit, limit.adapting]).toEqual([4, true]);
    limit.holdAt(3);
    expect([limit.limit, limit.adapting]).toEqual([3, false]);
    expect(() => new AdaptiveLimit({ initial: 0, max: 4 })).toThrow(RangeError);
  });
});

describe('ByteBudget', () => {
  it('grants within its ceiling, counts what it must grant regardless, and keeps the peak', () => {
    const budget = new ByteBudget(100);
    expect(budget.tryTake(60)).toBe(true);
    expect(budget.tryTake(50)).toBe(false);
    budget.take(50);
    expect([budget.held, budget.peak]).toEqual([110, 110]);
    expect(budget.tryTake(1)).toBe(false);
    budget.release(110);
    expect(budget.tryTake(100)).toBe(true);
    expect(() => new ByteBudget(-1)).toThrow(RangeError);
  });
});
