/** The FileStore's byte formats: Python float spelling, PyYAML-compatible meta.yaml, atomic writes, the lock. */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  atomicWriteFile,
  metricLine,
  parseMetaYaml,
  pythonFloatRepr,
  runStatusFromStored,
  toMetaYaml,
  withLockFile,
} from '../../src/mlflow/file-store-format.js';
import { runPython } from '../support/python.js';
import { describeWithServers } from '../support/servers.js';

const FLOATS = [0, 1, -1, 0.5, 3, 0.1, 1 / 3, 1e15, 1e16, 123456789012345678, 1e20, 1e-4, 1e-5, 0.00012345, -2.5e-7, 5e-324, 1.7976931348623157e308, 1234.5678];

describe('file store formats', () => {
  it('spells floats like Python repr()', () => {
    expect(FLOATS.map(pythonFloatRepr)).toEqual([
      '0.0', '1.0', '-1.0', '0.5', '3.0', '0.1', '0.3333333333333333', '1000000000000000.0', '1e+16', '1.2345678901234568e+17',
      '1e+20', '0.0001', '1e-05', '0.00012345', '-2.5e-07', '5e-324', '1.7976931348623157e+308', '1234.5678',
    ]);
    expect([Number.NaN, Infinity, -Infinity, -0].map(pythonFloatRepr)).toEqual(['nan', 'inf', '-inf', '-0.0']);
    expect(metricLine({ timestamp: 1700000000000, value: 2, step: 7 })).toBe('1700000000000 2.0 7\n');
  });

  it('writes meta.yaml with sorted keys and YAML 1.1 quoting, and reads legacy int ids', async () => {
    expect(await toMetaYaml({ name: 'yes', experiment_id: '12', tags: [], end_time: null, source_type: 4, path: 'file:///a b/c', n: '1_000', u: 'модель' })).toBe(
      "end_time: null\nexperiment_id: '12'\n'n': '1_000'\nname: 'yes'\npath: file:///a b/c\nsource_type: 4\ntags: []\nu: модель\n",
    );
    expect(await parseMetaYaml('experiment_id: 3\nname: on\n')).toEqual({ experiment_id: 3, name: true });
    expect(await parseMetaYaml('')).toBeUndefined();
    expect(await parseMetaYaml('- a\n')).toBeUndefined();
    expect(['RUNNING', 3, '4', 99, undefined].map(runStatusFromStored)).toEqual(['RUNNING', 'FINISHED', 'FAILED', 'RUNNING', 'RUNNING']);
  });

  it('writes atomically through a temp file in another directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'au-atomic-'));
    const target = join(dir, 'meta.yaml');
    writeFileSync(target, 'old');
    await atomicWriteFile(target, 'new', dir);
    expect(readFileSync(target, 'utf8')).toBe('new');
    expect(readdirSync(dir)).toEqual(['meta.yaml']);
    await expect(atomicWriteFile(join(dir, 'missing', 'x'), 'data', dir)).rejects.toThrow();
    expect(readdirSync(dir)).toEqual(['meta.yaml']);
  });

  it('serializes holders of a lock file and breaks a stale one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'au-lock-'));
    const lock = join(dir, '.lock');
    const order: string[] = [];
    const job = (name: string) =>
      withLockFile(lock, async () => {
        order.push(`${name}:in`);
        await new Promise((r) => setTimeout(r, 20));
        order.push(`${name}:out`);
      });
    await Promise.all([job('a'), job('b')]);
    // Either may win the race for the file (both opens run on the thread pool); never both inside.
    expect([['a:in', 'a:out', 'b:in', 'b:out'], ['b:in', 'b:out', 'a:in', 'a:out']]).toContainEqual(order);
    expect(readdirSync(dir)).toEqual([]);

    writeFileSync(lock, '999999\n');
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    expect(await withLockFile(lock, async () => 'ran')).toBe('ran');
    expect(readdirSync(dir)).toEqual([]);
  });
});

describeWithServers('file store formats against Python', () => {
  it('float spelling and YAML match what Python writes and reads', async () => {
    const yaml = await toMetaYaml({ a: 'on', b: 'yes', c: '0x1F', d: '12:30', e: '1_000', f: '1e5', g: '', h: 'null', i: '~', j: 'a: b', k: "it's", l: '#x', m: 'line\nbreak', n: '00123' });
    const out = await runPython(
      `
import json, sys, yaml
floats = json.loads(sys.argv[1])
print(json.dumps({'repr': [repr(float(x)) for x in floats], 'yaml': yaml.safe_load(sys.argv[2])}))
`,
      { args: [JSON.stringify(FLOATS), yaml] },
    );
    const py = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    expect(FLOATS.map(pythonFloatRepr)).toEqual(py.repr);
    expect(py.yaml).toEqual({ a: 'on', b: 'yes', c: '0x1F', d: '12:30', e: '1_000', f: '1e5', g: '', h: 'null', i: '~', j: 'a: b', k: "it's", l: '#x', m: 'line\nbreak', n: '00123' });
  });

  it('names with YAML 1.1 line breaks (U+0085, U+2028, U+2029) or characters PyYAML refuses raw are read back by MLflow\'s YAML loader as they were', async () => {
    // Each broke or changed what MLflow read: a raw U+2028 made the file unreadable (and with it
    // every listing of the store's experiments), a raw U+0085 was read as a space.
    const names = { a: 'nel\u0085x', b: 'line\u2028sep', c: 'para\u2029sep', d: 'del\u007fx', e: 'c1\u0080\u009fx', f: 'nonchar\ufffe\uffffx', g: "mixed 'q' \u2028\nmodel 模型" };
    const yaml = await toMetaYaml(names);
    const out = await runPython(
      `
import json, sys, yaml
from mlflow.utils.yaml_utils import YamlSafeLoader
names = json.loads(sys.argv[1])
print(json.dumps({'read': yaml.load(sys.argv[2], Loader=YamlSafeLoader)}))
`,
      { args: [JSON.stringify(names), yaml] },
    );
    const py = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    expect(py.read).toEqual(names);
    expect(yaml).toContain('b: "line\\Lsep"');
    expect(await parseMetaYaml(yaml)).toEqual(names);
  });
});
