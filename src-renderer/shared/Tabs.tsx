// WAI-ARIA tabs (https://www.w3.org/WAI/ARIA/apg/patterns/tabs/): one tab stop for the tab list,
// Left/Right (and Home/End) move between tabs and select them, the panel follows.
import { useRef, type ReactNode } from 'react';

export interface TabSpec<T extends string> {
  id: T;
  label: ReactNode;
}

export function Tabs<T extends string>({ id, label, tabs, selected, onSelect, className = 'tabs' }: { id: string; label: string; tabs: TabSpec<T>[]; selected: T; onSelect: (t: T) => void; className?: string }) {
  const refs = useRef(new Map<T, HTMLButtonElement>());
  const move = (to: number) => {
    const t = tabs[(to + tabs.length) % tabs.length]!;
    onSelect(t.id);
    refs.current.get(t.id)?.focus();
  };
  const at = tabs.findIndex((t) => t.id === selected);
  return (
    <div
      role="tablist"
      aria-label={label}
      className={className}
      onKeyDown={(e) => {
        const keys: Record<string, number> = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 };
        if (e.key in keys) {
          e.preventDefault();
          move(keys[e.key]!);
        }
      }}
    >
      {tabs.map((t) => (
        <button
          key={t.id}
          ref={(el) => void (el ? refs.current.set(t.id, el) : refs.current.delete(t.id))}
          type="button"
          role="tab"
          id={`${id}-tab-${t.id}`}
          aria-selected={selected === t.id}
          aria-controls={`${id}-panel-${t.id}`}
          tabIndex={selected === t.id ? 0 : -1}
          onClick={() => onSelect(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function TabPanel({ id, tab, children }: { id: string; tab: string; children: ReactNode }) {
  return (
    <div role="tabpanel" id={`${id}-panel-${tab}`} aria-labelledby={`${id}-tab-${tab}`} tabIndex={0} className="tabpanel">
      {children}
    </div>
  );
}
