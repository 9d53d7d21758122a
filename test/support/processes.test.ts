import { describe, expect, it } from 'vitest';
import { freePort } from './processes.js';

describe('test support: freePort', () => {
  it('never hands out the same port twice in one process (the kernel may offer a released one again at once)', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 300; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    expect(ports.every((p) => p > 0 && p < 65536)).toBe(true);
  });
});
