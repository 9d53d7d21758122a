/**
 * One test run per checkout. Two runs in one checkout share what they write there: `npm test`'s
 * build empties dist/ under the other run's package and docs tests, coverage clears
 * coverage/.tmp under the other run's workers, and both write vitest.json and the summary CI
 * reads. (Servers, ports and temp dirs are per run, and the test venv has its own install lock.)
 * So the second run stops at once and names the first, rather than letting both fail later in
 * ways that point nowhere.
 *
 * vitest.config.ts takes the lock, because vitest loads its config before it clears coverage/
 * and before the global setup. The lock file holds the owner's pid and start time
 * (run-owner.ts): a run killed by SIGKILL leaves it behind, and the next run takes it over.
 */
import { linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ownerAlive, ownerId } from './run-owner.js';

/** Set by the run holding the lock, for the processes it starts. */
const LOCK_OWNER_VAR = 'ARTIFACT_UPLOADER_TEST_CHECKOUT_OWNER';

/** Thrown when another live test run holds the checkout. */
export class CheckoutBusyError extends Error {
  constructor(
    readonly lockFile: string,
    readonly holder: { owner: string; command: string; startedAt: string },
  ) {
    const pid = holder.owner.split(':')[0];
    super(
      `Another test run is using this checkout: pid ${pid} (${holder.command}), started ${holder.startedAt}. ` +
        `Two runs in one checkout overwrite each other's dist/, coverage/ and vitest.json. ` +
        `Wait for it to finish, or stop it (kill ${pid}); a run that was killed leaves ${lockFile}, which the next run takes over by itself.`,
    );
    this.name = 'CheckoutBusyError';
  }
}

/**
 * Takes `<checkout>/.cache/test-run.lock` for this process until it exits, or throws
 * {@link CheckoutBusyError} when another live run holds it. Returns the release function (also
 * run at exit).
 */
export function claimCheckout(checkout: string, command: string = process.argv.slice(1).join(' ')): () => void {
  const lockFile = lockFileOf(checkout);
  mkdirSync(dirname(lockFile), { recursive: true });
  const mine = { owner: ownerId() ?? String(process.pid), command, startedAt: new Date().toISOString() };
  // Written whole, then linked into place: a reader never sees a half-written lock.
  const temp = `${lockFile}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(mine));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(temp, lockFile);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 5) throw error;
      }
      const holder = readHolder(lockFile);
      // This run's own lock (its config loaded again, or a process it started): nothing to take.
      if (holder && (holder.owner === mine.owner || holder.owner === process.env[LOCK_OWNER_VAR])) return () => {};
      if (holder && ownerAlive(holder.owner)) throw new CheckoutBusyError(lockFile, holder);
      // A killed run's lock (or one unreadable): move it aside under a name of our own. Should
      // another run have taken it over in between, what was moved is that run's live lock: put back.
      const stale = `${lockFile}.${process.pid}.stale`;
      try {
        renameSync(lockFile, stale);
        const moved = readHolder(stale);
        if (moved && ownerAlive(moved.owner)) linkSync(stale, lockFile);
        rmSync(stale, { force: true });
      } catch {
        // Another run moved it first, or took it again meanwhile; look again.
      }
    }
  } finally {
    rmSync(temp, { force: true });
  }
  process.env[LOCK_OWNER_VAR] = mine.owner;
  const release = () => {
    if (readHolder(lockFile)?.owner === mine.owner) rmSync(lockFile, { force: true });
    process.off('exit', release);
  };
  process.on('exit', release);
  return release;
}

/**
 * Throws {@link CheckoutBusyError} when another live run holds `checkout`, without taking the
 * lock: tsup.config.ts calls it, so that `npm test`'s build fails before it empties dist/ under a
 * run in progress (the lock itself is only taken when vitest loads its config, after the build).
 */
export function assertNoOtherRun(checkout: string): void {
  const lockFile = lockFileOf(checkout);
  const holder = readHolder(lockFile);
  if (holder && holder.owner !== process.env[LOCK_OWNER_VAR] && ownerAlive(holder.owner)) throw new CheckoutBusyError(lockFile, holder);
}

function lockFileOf(checkout: string): string {
  return join(checkout, '.cache', 'test-run.lock');
}

function readHolder(lockFile: string): { owner: string; command: string; startedAt: string } | undefined {
  try {
    return JSON.parse(readFileSync(lockFile, 'utf8')) as { owner: string; command: string; startedAt: string };
  } catch {
    return undefined;
  }
}
