/** firstLine: the one way a server's or an SDK's multi-line message is quoted in ours. */
import { describe, expect, it } from 'vitest';
import { firstLine } from '../../src/core/format.js';

describe('firstLine', () => {
  it("keeps an Azure message's first line, without the RequestId and Time lines after it or the CR of a CRLF", () => {
    expect(firstLine('The specified container does not exist.\r\nRequestId:7e1c\r\nTime:2026-12-07T09:00:00.0000000Z')).toBe('The specified container does not exist.');
    expect(firstLine('  one line only  ')).toBe('one line only');
    expect(firstLine('')).toBe('');
  });
});
