/**
 * A form's "this cannot be saved yet" message as a live region: the region is in the page from the
 * start and only its text changes, so a screen reader announces the message when it appears or
 * changes (a live region inserted together with its text is often not read). Polite: it waits for
 * the person to stop typing. The Save button names it (aria-describedby) to say why it is disabled.
 */
export function FieldError({ id, problem }: { id: string; problem: string | null }) {
  return (
    <div id={id} role="status" aria-live="polite" aria-atomic="true">
      {problem && <p className="field-error">{problem}</p>}
    </div>
  );
}
