// System: which image this laptop runs, and its updates.
import { useStore } from 'zustand';
import type { Stores } from '../app/stores';
import { imageLabel } from '../shared/format';
import { UpdatePanel } from './UpdatePanel';

export function SystemPage({ stores }: { stores: Stores }) {
  const status = useStore(stores.agent, (s) => s.status);
  return (
    <>
      <section className="card" aria-labelledby="image-title">
        <h2 id="image-title">System image</h2>
        {status && (
          <>
            <p className="big" data-testid="image-name">
              {imageLabel(status.image)}
            </p>
            <dl className="facts">
              <dt>Image</dt>
              <dd>{status.image.id ?? 'unknown'}</dd>
              <dt>Version</dt>
              <dd data-testid="image-version-detail">{status.image.version}</dd>
              <dt>Computer</dt>
              <dd>{status.hostname}</dd>
              <dt>Tabula</dt>
              <dd>{status.agentVersion}</dd>
            </dl>
            {status.image.problem && <p className="banner warning">{status.image.problem}</p>}
          </>
        )}
      </section>
      <UpdatePanel store={stores.imageUpdate} />
    </>
  );
}
