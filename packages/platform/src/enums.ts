/**
 * The inverse of a one-to-one map from our stored names to a contract enum: enum value → name. Handlers
 * write each map once (name → enum, total over the names, so the compiler catches a new name) and derive
 * the direction requests need; values the map does not reach (UNSPECIFIED) stay undefined.
 */
export function invertEnumMap<K extends string, V extends number>(map: Record<K, V>): Partial<Record<V, K>> {
  const inverse: Partial<Record<V, K>> = {};
  for (const [name, value] of Object.entries(map) as [K, V][]) {
    if (inverse[value] !== undefined) throw new Error(`enum map is not one-to-one: ${value} is both ${inverse[value]} and ${name}`);
    inverse[value] = name;
  }
  return inverse;
}
