// The safety line's icons: the same glyphs as the tray (assets/icons/tray-*.svg), drawn inline so
// they follow the theme. Decorative: the sentence next to them says everything.
import type { SafetyIcon as Icon } from '../../src-main/common/safety-line';

const glyphs: Record<Icon, React.ReactNode> = {
  safe: <path d="M6.6 12.4 10.3 16 17.4 8.4" fill="none" strokeWidth="2.8" />,
  syncing: (
    <>
      <path d="M7.11 9.72A5.4 5.4 0 0 1 16.01 8.39M16.89 14.28A5.4 5.4 0 0 1 7.99 15.61" fill="none" strokeWidth="2.2" />
      <path d="M18.42 11.06 17.72 6.85 14.3 9.93ZM5.58 12.94 6.28 17.15 9.7 14.07Z" className="fill" strokeWidth="0.6" />
    </>
  ),
  pending: <path d="M12 17.4V7.2M7.6 11.4 12 7 16.4 11.4" fill="none" strokeWidth="2.8" />,
  queued: (
    <>
      <path d="M7.4 17.6h9.5a3.4 3.4 0 0 0 .45-6.77 5 5 0 0 0-9.6-1.05A4 4 0 0 0 7.4 17.6Z" className="fill" strokeWidth="0" />
      <path d="M4.2 6.6 17.4 19.8" className="cut" strokeWidth="2" />
      <path d="M5.6 5.6 18.4 18.4" strokeWidth="2.2" />
    </>
  ),
  'local-only': (
    <>
      <rect x="7" y="7.4" width="10" height="7" rx="1" fill="none" strokeWidth="2" />
      <path d="M5.4 17.2h13.2" strokeWidth="2.4" />
    </>
  ),
  paused: <path d="M9.4 7.6v8.8M14.6 7.6v8.8" strokeWidth="3" />,
  decision: (
    <>
      <path d="M8.9 9.1a3.15 3.15 0 1 1 4.5 2.85c-.9.42-1.4 1.05-1.4 2.05v.6" fill="none" strokeWidth="2.8" />
      <circle cx="12" cy="18.1" r="1.75" className="fill" strokeWidth="0" />
    </>
  ),
  update: (
    <>
      <path d="M16.9 10.3A5.2 5.2 0 1 0 16.6 14.6" fill="none" strokeWidth="2.4" />
      <path d="M18.2 6.4 17.9 11.2 13.3 10Z" className="fill" strokeWidth="0.6" />
    </>
  ),
  error: <path d="M7.8 7.8 16.2 16.2M16.2 7.8 7.8 16.2" strokeWidth="3" />,
  stale: (
    <>
      <circle cx="12" cy="12" r="6.4" fill="none" strokeWidth="2" />
      <path d="M12 8.4V12l2.6 1.8" fill="none" strokeWidth="2" />
    </>
  ),
  disconnected: (
    <>
      <path d="M9 6.5v3M15 6.5v3M7.5 9.5h9v2.5a4.5 4.5 0 0 1-9 0Z" fill="none" strokeWidth="2" />
      <path d="M12 16.5v2" strokeWidth="2" />
      <path d="M5.6 5.6 18.4 18.4" strokeWidth="2.2" />
    </>
  ),
};

export function SafetyIcon({ icon }: { icon: Icon }) {
  return (
    <svg className={`safety-icon icon-${icon}`} viewBox="0 0 24 24" width="40" height="40" aria-hidden="true" focusable="false">
      <circle cx="12" cy="12" r="11" className="disc" />
      <g className="glyph" strokeLinecap="round" strokeLinejoin="round">
        {glyphs[icon]}
      </g>
    </svg>
  );
}
