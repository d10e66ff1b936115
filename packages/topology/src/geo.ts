/**
 * Geography for topologies that come with coordinates (Topology Zoo): great-circle
 * distance and the propagation delay of a fibre laid along it.
 */

export interface LatLon {
  /** Degrees, -90..90 */
  lat: number;
  /** Degrees, -180..180 */
  lon: number;
}

/** Mean Earth radius (IUGG), the usual choice for haversine distances. */
export const EARTH_RADIUS_KM = 6371;

/**
 * Light in silica fibre travels at about c/1.47 ≈ 204,000 km/s, i.e. ≈ 4.9 µs per km;
 * 5 µs per km is the round figure operators quote.
 */
export const FIBRE_US_PER_KM = 5;

/**
 * Nodes in the same city often share coordinates. A zero delay would make such links free
 * for shortest paths and netem treats 0 as "no delay", so co-located ends get this floor.
 */
export const MIN_FIBRE_DELAY_US = 10;

export function isValidLatLon(p: LatLon): boolean {
  return Number.isFinite(p.lat) && Number.isFinite(p.lon) && Math.abs(p.lat) <= 90 && Math.abs(p.lon) <= 180;
}

/** Haversine great-circle distance in km. */
export function greatCircleKm(a: LatLon, b: LatLon): number {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  // min(): rounding can push h a hair above 1 for antipodal points, and asin(>1) is NaN.
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** One-way propagation delay of a fibre of `km` km, in whole µs, at least MIN_FIBRE_DELAY_US. */
export function fibreDelayUs(km: number): number {
  return Math.max(MIN_FIBRE_DELAY_US, Math.round(km * FIBRE_US_PER_KM));
}
