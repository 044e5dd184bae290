import { expect, it } from 'vitest';
import { isLoopbackHttp } from '../../src-main/core/agent-address';

it('the CLI talks only to plain http on loopback, with nothing smuggled around the address', () => {
  for (const ok of ['http://127.0.0.1:4242', 'http://127.1.2.3:1', 'http://[::1]:8080']) expect([ok, isLoopbackHttp(ok)]).toEqual([ok, true]);
  for (const bad of [
    'http://10.0.0.1:80',
    'http://0.0.0.0:4242',
    'http://localhost:4242',
    'http://127.0.0.1.evil.example:4242',
    'http://127.0.0.1:4242@evil.example:80',
    'http://user@127.0.0.1:4242',
    'https://127.0.0.1:4242',
    'http://127.0.0.1:4242/api',
    'http://127.0.0.1',
    'file:///etc/passwd',
    'http://2130706433:4242', // 127.0.0.1 as one number: the URL parser normalises it, the file must not need that
    ' http://127.0.0.1:4242',
  ])
    expect([bad, isLoopbackHttp(bad)]).toEqual([bad, false]);
});
