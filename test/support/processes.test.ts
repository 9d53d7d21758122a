import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startServer, waitForHttp, type ManagedProcess, type ServerSpec } from './processes.js';

describe('test support: freePort', () => {
  it('never hands out the same port twice in one process (the kernel may offer a released one again at once)', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 300; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    expect(ports.every((p) => p > 0 && p < 65536)).toBe(true);
  });
});

/**
 * A server as the real ones behave when their port is taken: `exit` says so and exits (moto,
 * mlflow, Azurite), `stay` says so and stays up (the GCS emulator), `silent` says nothing and
 * stays up (the worst case: only the socket's owner tells); `exit-3` fails for another reason.
 */
const SERVER = `
const [port, mode] = process.argv.slice(1);
if (mode === 'exit-3') process.exit(3);
const server = require('node:http').createServer((req, res) => res.end('ours'));
server.on('error', (error) => {
  if (mode !== 'silent') console.error('bind failed: ' + error.message);
  if (mode === 'exit') process.exit(1);
  setInterval(() => {}, 1000);
});
server.listen(Number(port), '127.0.0.1');
`;

describe('test support: startServer retries on a new port when another process took the first', () => {
  let logDir: string;
  let started: ManagedProcess[] = [];
  const holders: Array<Server | HttpServer> = [];
  const heldConnections: Socket[] = [];

  beforeAll(() => {
    logDir = mkdtempSync(join(tmpdir(), 'au-start-server-'));
  });
  afterEach(async () => {
    await Promise.all(started.map((p) => p.stop()));
    started = [];
    for (const socket of heldConnections.splice(0)) socket.destroy();
    for (const holder of holders) if ('closeAllConnections' in holder) holder.closeAllConnections();
    await Promise.all(holders.splice(0).map((h) => new Promise((resolve) => h.close(resolve))));
  });
  afterAll(() => rmSync(logDir, { recursive: true, force: true }));

  /** A port another process "took" between freePort and the server's bind: held here, answering HTTP or not. */
  async function takenPort(answersHttp: boolean): Promise<number> {
    // The TCP holder never answers: the readiness check's connections stay open until the test ends.
    const holder = answersHttp ? createHttpServer((req, res) => res.end('foreign')) : createTcpServer((socket) => heldConnections.push(socket));
    holders.push(holder);
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    return (holder.address() as { port: number }).port;
  }

  /** The picker hands out `first` (and `first` again while `repeat` lasts), then free ports. */
  function picker(first: number, repeat = 1): { pickPort: () => Promise<number>; picked: number[] } {
    const picked: number[] = [];
    return {
      picked,
      pickPort: async () => {
        const port = picked.length < repeat ? first : await freePort();
        picked.push(port);
        return port;
      },
    };
  }

  function spec(name: string, mode: string, pickPort: () => Promise<number>, lines: string[]): ServerSpec {
    return {
      name,
      command: process.execPath,
      args: (port) => ['-e', SERVER, String(port), mode],
      ready: (port, proc) => waitForHttp(`http://127.0.0.1:${port}/`, proc, 30_000),
      logDir,
      onStart: (proc) => started.push(proc),
      log: (line) => lines.push(line),
      pickPort,
    };
  }

  async function body(port: number): Promise<string> {
    return (await fetch(`http://127.0.0.1:${port}/`)).text();
  }

  it('a server that exits on "address already in use" is started again on a new port', async () => {
    const taken = await takenPort(false);
    const { pickPort, picked } = picker(taken);
    const lines: string[] = [];
    const { port } = await startServer(spec('exits', 'exit', pickPort, lines));
    expect(picked[0]).toBe(taken);
    expect(port).not.toBe(taken);
    expect(await body(port)).toBe('ours');
    expect(readFileSync(join(logDir, 'exits.log'), 'utf8')).toContain('EADDRINUSE');
    expect(lines).toEqual([`exits: port ${taken} was taken (its log says the address is in use); trying another port`]);
    expect(started).toHaveLength(2);
    expect(started[0]!.child.exitCode).toBe(1);
  });

  it('a server that logs the bind error but stays up (as the GCS emulator does) is stopped and started again', async () => {
    const taken = await takenPort(false);
    const { pickPort } = picker(taken);
    const { port } = await startServer(spec('stays', 'stay', pickPort, []));
    expect(port).not.toBe(taken);
    expect(await body(port)).toBe('ours');
    expect(started[0]!.child.exitCode ?? started[0]!.child.signalCode).not.toBeNull();
  });

  it('a readiness check answered by the process holding the port does not count: the server must hold the socket', async () => {
    const taken = await takenPort(true);
    expect(await body(taken)).toBe('foreign');
    const { pickPort } = picker(taken);
    const lines: string[] = [];
    const { port } = await startServer(spec('silent', 'silent', pickPort, lines));
    expect(port).not.toBe(taken);
    expect(await body(port)).toBe('ours');
    expect(lines).toEqual([`silent: port ${taken} was taken (another process answered on it); trying another port`]);
  });

  it('gives up after the given number of attempts, naming every port and log', async () => {
    const taken = await takenPort(false);
    const { pickPort, picked } = picker(taken, Infinity);
    const attempt = startServer({ ...spec('unlucky', 'exit', pickPort, []), attempts: 2 });
    await expect(attempt).rejects.toThrow(`unlucky could not get a port in 2 attempts, each taken by another process: port ${taken}: its log says the address is in use (${join(logDir, 'unlucky.log')}); port ${taken}`);
    expect(picked).toEqual([taken, taken]);
  });

  it('any other failure is thrown at the first attempt, not retried', async () => {
    const { pickPort, picked } = picker(await freePort());
    await expect(startServer(spec('broken', 'exit-3', pickPort, []))).rejects.toThrow(/process exited \(3\)/);
    expect(picked).toHaveLength(1);
  });
});
