/**
 * The few `node:crypto` functions the library calls, loading `node:crypto` on the first call
 * rather than with the library: on Node 26 that module costs the import 3.3 MiB of RSS (1.2 MiB
 * on Node 20), and a training script or sweep tracker imports us long before its first upload.
 * Same signatures as Node's.
 *
 * @module
 */
import type { Hash, HashOptions } from 'node:crypto';

let loaded: typeof import('node:crypto') | undefined;
const nodeCrypto = (): typeof import('node:crypto') => (loaded ??= process.getBuiltinModule('node:crypto'));

/**
 * `crypto.createHash`.
 *
 * @example
 * ```ts
 * createHash('sha256').update('hello').digest('hex'); // '2cf24dba...'
 * ```
 */
export function createHash(algorithm: string, options?: HashOptions): Hash {
  return nodeCrypto().createHash(algorithm, options);
}

/**
 * `crypto.randomBytes`, the synchronous form.
 *
 * @example
 * ```ts
 * randomBytes(6).toString('hex'); // 12 hex digits
 * ```
 */
export function randomBytes(size: number): Buffer {
  return nodeCrypto().randomBytes(size);
}

/**
 * `crypto.randomUUID`.
 *
 * @example
 * ```ts
 * randomUUID(); // '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed'
 * ```
 */
export function randomUUID(): string {
  return nodeCrypto().randomUUID();
}

/**
 * `crypto.randomInt`, the synchronous form: an integer in `[min, max)`, or `[0, max)` with one
 * argument.
 *
 * @example
 * ```ts
 * randomInt(1, 10); // 1 to 9
 * ```
 */
export function randomInt(minOrMax: number, max?: number): number {
  return max === undefined ? nodeCrypto().randomInt(minOrMax) : nodeCrypto().randomInt(minOrMax, max);
}
