// `npm run screenshots`: the README's pictures, taken from the real window (a real agent in a
// sandbox, real rsync, Debian's Chromium). Not part of `npm test`: it rewrites docs/*.png.
import { defineConfig } from '@playwright/test';
import base from './playwright.config';

export default defineConfig({ ...base, testDir: 'scripts/screenshots', timeout: 180_000 });
