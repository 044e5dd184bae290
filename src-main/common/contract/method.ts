// The one helper every contract file declares its methods with: an argument schema, validated at
// the boundary by the router, and a phantom result type. In its own file so that the feature
// contracts need not import index.ts (which spreads them: a cycle would leave one undefined).
import { z } from 'zod';

export interface MethodSpec<A extends z.ZodType, R> {
  args: A;
  /** Phantom: carries the result type only. */
  result?: R;
}

export const method =
  <R>() =>
  <A extends z.ZodType>(args: A): MethodSpec<A, R> => ({ args });

export const noArgs = z.object({}).strict();
