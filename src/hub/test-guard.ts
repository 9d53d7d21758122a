/**
 * A guard against test suites publishing to the real Hugging Face Hub. A test that forgets to
 * point `hubUrl` at a local Hub would otherwise create public repositories with a developer's
 * token, so {@link publishToHub} refuses the public Hub whenever the process looks like a test
 * run, unless the caller opts in with `allowPublicHubInTests: true`. Any other Hub URL (a local
 * fake, a private mirror) is always allowed.
 *
 * @module
 */
import { InvalidArgumentError, PublicHubInTestError } from '../core/errors.js';
import type { Env } from '../core/env.js';

/** The public Hub's address, the default when neither `hubUrl` nor `HF_ENDPOINT` is set. */
export const PUBLIC_HUB_URL = 'https://huggingface.co';

/** What {@link detectTestRunner} looks at; every field defaults to the current process. */
export interface TestRunnerProbe {
  /** @default process.env */
  env?: Env;
  /** Where test globals (`describe`, `it`) would live. @default globalThis */
  globals?: object;
  /** Node's own flags (`--test`). @default process.execArgv */
  execArgv?: readonly string[];
}

/** Environment variables that test runners set in the processes running tests. */
const RUNNER_ENV_VARS: ReadonlyArray<[name: string, runner: string]> = [
  ['VITEST', 'vitest'],
  ['VITEST_WORKER_ID', 'vitest'],
  ['JEST_WORKER_ID', 'jest'],
  ['MOCHA_WORKER_ID', 'mocha (parallel)'],
  ['NODE_TEST_CONTEXT', 'node:test'],
  ['TAP_CHILD_ID', 'node-tap'],
  ['TEST_WORKER_INDEX', 'playwright'],
];

/**
 * Says whether the process runs under a test runner, and what gave it away: vitest (`VITEST`),
 * jest (`JEST_WORKER_ID`), mocha (its `describe`/`it` globals, or `MOCHA_WORKER_ID`), node:test
 * (`NODE_TEST_CONTEXT`, `--test`), node-tap, playwright, `NODE_ENV=test`, or an npm `test`
 * script (`npm_lifecycle_event`, which is how CI usually runs tests). Returns `undefined` when
 * nothing points to a test run.
 *
 * @example
 * ```ts
 * detectTestRunner(); // 'VITEST (vitest)' inside vitest, undefined in a training script
 * ```
 */
export function detectTestRunner(probe: TestRunnerProbe = {}): string | undefined {
  const env = probe.env ?? process.env;
  for (const [name, runner] of RUNNER_ENV_VARS) {
    const value = env[name];
    if (value !== undefined && value !== '' && value !== 'false') return `${name} (${runner})`;
  }
  if (env.NODE_ENV?.toLowerCase() === 'test') return 'NODE_ENV=test';
  const lifecycle = env.npm_lifecycle_event;
  if (lifecycle && /^(pre|post)?test(:|$)/.test(lifecycle)) {
    return `npm_lifecycle_event=${lifecycle}${env.CI ? ` with CI=${env.CI}` : ''}`;
  }
  const execArgv = probe.execArgv ?? process.execArgv;
  if (execArgv.some((flag) => flag === '--test' || flag.startsWith('--test-'))) return 'node --test (node:test)';
  const globals = (probe.globals ?? globalThis) as { describe?: unknown; it?: unknown };
  if (typeof globals.describe === 'function' && typeof globals.it === 'function') return 'describe/it globals (mocha, jasmine or jest)';
  return undefined;
}

/** True for the public Hub: `huggingface.co`, `hf.co` and their subdomains. */
export function isPublicHubUrl(hubUrl: string): boolean {
  let host: string;
  try {
    host = new URL(hubUrl).hostname.toLowerCase().replace(/\.$/, '');
  } catch {
    throw new InvalidArgumentError('hubUrl', `Expected \`hubUrl\` to be an absolute http(s) URL, got ${JSON.stringify(hubUrl)}.`);
  }
  return host === 'huggingface.co' || host.endsWith('.huggingface.co') || host === 'hf.co' || host.endsWith('.hf.co');
}

/** Options of {@link assertHubAllowed}. */
export interface HubGuardOptions extends TestRunnerProbe {
  /** Allow the public Hub even under a test runner. @default false */
  allowPublicHubInTests?: boolean;
}

/**
 * Throws {@link PublicHubInTestError} when `hubUrl` is the public Hub, the process runs under a
 * test runner and `allowPublicHubInTests` is not set. Does nothing otherwise.
 *
 * @example
 * ```ts
 * assertHubAllowed('https://huggingface.co'); // throws under vitest
 * assertHubAllowed('http://127.0.0.1:5555');  // always fine
 * ```
 */
export function assertHubAllowed(hubUrl: string, options: HubGuardOptions = {}): void {
  if (!isPublicHubUrl(hubUrl) || options.allowPublicHubInTests === true) return;
  const detectedBy = detectTestRunner(options);
  if (detectedBy) throw new PublicHubInTestError(detectedBy);
}
