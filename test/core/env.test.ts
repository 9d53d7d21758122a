/**
 * Reading MLflow's environment variables as MLflow reads them. Numbers go through the Python
 * type's constructor there (`_EnvironmentVariable.get`: `int(text)` or `float(text)`), so a
 * number variable takes exactly what `int()`/`float()` take; the table below is Python 3's
 * answer for each text, and the real-server block asks MLflow's own `_EnvironmentVariable`.
 */
import { describe, expect, it } from 'vitest';
import { envNumber } from '../../src/core/env.js';
import { ConfigError } from '../../src/core/errors.js';
import { runPython } from '../support/python.js';
import { describeWithServers } from '../support/servers.js';

/** Text, then what `int(text)` and `float(text)` give (`undefined`: Python raises ValueError). */
const FORMS: Array<[text: string, int: number | undefined, float: number | undefined]> = [
  ['5', 5, 5],
  [' 5 ', 5, 5],
  ['\t5\n', 5, 5],
  ['\u20035\u3000', 5, 5],
  ['\x855', 5, 5],
  ['+5', 5, 5],
  ['-5', -5, -5],
  ['007', 7, 7],
  ['1_000', 1000, 1000],
  ['\u0663', 3, 3],
  ['\uff11\uff12', 12, 12],
  ['1e1', undefined, 10],
  ['1E1', undefined, 10],
  ['5.0', undefined, 5],
  ['1.5', undefined, 1.5],
  ['.5', undefined, 0.5],
  ['5.', undefined, 5],
  ['1_000.5', undefined, 1000.5],
  ['1e-3', undefined, 0.001],
  ['12_3.4_5e1_0', undefined, 123.45e10],
  ['1__000', undefined, undefined],
  ['_1', undefined, undefined],
  ['1_', undefined, undefined],
  ['1._5', undefined, undefined],
  ['1e_3', undefined, undefined],
  ['0x10', undefined, undefined],
  ['0b1', undefined, undefined],
  ['0o7', undefined, undefined],
  ['.', undefined, undefined],
  ['1 000', undefined, undefined],
  ['1,000', undefined, undefined],
  ['\x1c5', undefined, undefined],
  ['\ufeff5', undefined, undefined],
  ['5\u200b', undefined, undefined],
  ['abc', undefined, undefined],
];

/** Parsed by Python's `float()`, and refused here as out of range (not a finite number). */
const NOT_FINITE = ['Infinity', 'inf', '-inf', 'nan', 'NaN'];

const NAME = 'MLFLOW_HTTP_REQUEST_MAX_RETRIES';
const read = (text: string, integer: boolean) => envNumber(NAME, { [NAME]: text }, { integer });

function refusal(text: string, integer: boolean): unknown {
  try {
    read(text, integer);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('envNumber reads what Python’s int() and float() read', () => {
  it.each(FORMS)('%j: int() %j, float() %j', (text, asInt, asFloat) => {
    for (const [integer, expected] of [
      [true, asInt],
      [false, asFloat],
    ] as const) {
      if (expected === undefined) expect(refusal(text, integer), `${integer ? 'int' : 'float'}(${JSON.stringify(text)})`).toBeInstanceOf(ConfigError);
      else expect(read(text, integer)).toBe(expected);
    }
  });

  it('a refused text is a ConfigError naming the variable, its value and what to set', () => {
    expect(refusal('0x10', true)).toMatchObject({
      code: 'CONFIG_INVALID',
      message: `Environment variable ${NAME} must be an integer, got "0x10". Set ${NAME} to an integer, or unset it for the default.`,
      issues: [{ path: NAME, message: 'expected an integer' }],
    });
    expect(refusal('1e1', true)).toMatchObject({ message: expect.stringContaining('must be an integer, got "1e1"') });
  });

  it('inf and nan parse as Python floats, and are refused as no finite number', () => {
    for (const text of NOT_FINITE) {
      expect(refusal(text, false)).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining(`must be a number, got "${text}"`) });
      expect(refusal(text, true)).toBeInstanceOf(ConfigError);
    }
  });

  it('unset, empty and blank are unset', () => {
    expect(envNumber(NAME, {})).toBeUndefined();
    expect(read('', true)).toBeUndefined();
    expect(read('  ', false)).toBeUndefined();
  });
});

describeWithServers('envNumber, held to MLflow', () => {
  it('takes what MLflow’s _EnvironmentVariable (int and float) takes, and gives the same number', async () => {
    const texts = [...FORMS.map(([text]) => text), ...NOT_FINITE];
    const script = `
import json, os, sys
from mlflow.environment_variables import _EnvironmentVariable
out = []
for text in json.loads(sys.argv[1]):
    os.environ["AU_PROBE"] = text
    row = []
    for kind in (int, float):
        try:
            value = _EnvironmentVariable("AU_PROBE", kind, None).get()
            row.append(value if value == value and abs(value) != float("inf") else str(value))
        except ValueError:
            row.append(None)
    out.append(row)
print(json.dumps(out))
`;
    const python = JSON.parse(await runPython(script, { args: [JSON.stringify(texts)] })) as Array<[number | string | null, number | string | null]>;
    const ours = texts.map((text) => [true, false].map((integer) => (refusal(text, integer) ? null : read(text, integer))));
    // Python's non-finite floats ('inf', 'nan') are numbers to MLflow and out of range here.
    const finite = python.map((row) => row.map((value) => (typeof value === 'string' ? null : value)));
    expect(ours).toEqual(finite);
  });
});
