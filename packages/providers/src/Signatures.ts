/**
 * Webhook signatures: HMAC-SHA256 over the raw body, base64, compared in
 * constant time.
 */
import { createHmac, timingSafeEqual } from "node:crypto"

export const hmacSha256Base64 = (secret: string, body: Uint8Array | string): string =>
  createHmac("sha256", secret).update(body).digest("base64")

/** Compares two strings without leaking where they differ through timing. */
export const constantTimeEqual = (a: string, b: string): boolean => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  if (x.length !== y.length) {
    // Still spend the comparison so length alone is the only signal.
    timingSafeEqual(x, x)
    return false
  }
  return timingSafeEqual(x, y)
}

/** True when `signature` is the base64 HMAC-SHA256 of `body` under `secret`. */
export const verifyHmacSha256Base64 = (secret: string, body: Uint8Array, signature: string | undefined): boolean =>
  signature !== undefined && signature.length > 0 && constantTimeEqual(hmacSha256Base64(secret, body), signature.trim())
