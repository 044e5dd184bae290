// How an image is named to a person, the same in the window, the tray and the headless banner.

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * "Debian GNU/Linux 12 (bookworm)", not "… (bookworm) 12": the version only when the name does not
 * already say it (as a word: "Tabula 2026.12" at version "1" still gets its "1").
 */
export function imageLabel(image: { name: string; version: string }): string {
  const version = image.version.trim();
  if (!version || version === 'unknown') return image.name;
  if (new RegExp(`(^|[\\s(])${escape(version)}($|[\\s),])`).test(image.name)) return image.name;
  return `${image.name} ${version}`;
}
