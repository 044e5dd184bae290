import { useStore, type StoreApi } from 'zustand';
import type { ImageState } from '../stores/status-stores';

export function ImageCard({ store }: { store: StoreApi<ImageState> }) {
  const image = useStore(store, (s) => s.image);
  const hostname = useStore(store, (s) => s.hostname);
  return (
    <section className="card" aria-labelledby="image-title">
      <h2 id="image-title">System image</h2>
      {image ? (
        <>
          <p className="big" data-testid="image-version">
            {image.name} <strong>{image.version}</strong>
          </p>
          <p className="muted">
            {image.problem ?? `Running image ${image.id ?? 'unknown'} ${image.version} on ${hostname}.`}
          </p>
        </>
      ) : (
        <p className="muted">Loading…</p>
      )}
    </section>
  );
}
