import { createHash } from 'node:crypto'
import type { Metadata, OutputInfo, SharpConstructor } from 'sharp'
import type { ImageSize } from '../db/schema/index.js'

// The sizes a product image is served in: a fixed set of widths (never wider than the original),
// each in WebP and AVIF, made in the worker with sharp (libvips) from the original's bytes. Each
// size is an object of its own, named from the upload's id, its width and its format, so its
// bytes never change under its name and it is cached like the original (a year, immutable).

// sharp (libvips) is loaded by the first image to size, not by every process that imports this
// module. Each original is read once: libvips' operation cache would only hold memory in a
// long-lived worker.
let loadingSharp: Promise<SharpConstructor> | undefined
const loadSharp = () => (loadingSharp ??= import('sharp').then(({ default: sharp }) => { sharp.cache(false); return sharp as SharpConstructor }))

export const IMAGE_WIDTHS = [160, 480, 960] as const
export const IMAGE_FORMATS = ['webp', 'avif'] as const
export type ImageFormat = (typeof IMAGE_FORMATS)[number]
export const IMAGE_MIME = { webp: 'image/webp', avif: 'image/avif' } as const satisfies Record<ImageFormat, string>

/** The storage key of one size: `<upload id>-w<width>.<format>` (the storages' safe key shape). */
export const sizeKey = (uploadId: string, width: number, format: ImageFormat) => `${uploadId}-w${width}.${format}`
/** The upload id a size's key belongs to, or undefined when the key is not a size's. */
export const uploadIdOfSizeKey = (key: string) => /^([0-9a-f-]{36})-w\d+\.(webp|avif)$/.exec(key)?.[1]

/** The image does not decode (corrupt, truncated, too many pixels): no run will ever make its sizes. */
export class UndecodableImage extends Error {}

/**
 * The widths to make of an original `width` pixels wide: those of the set it reaches, or, for an
 * original narrower than the smallest, its own width (an image is never enlarged).
 */
export function widthsFor(width: number) {
  const fit = IMAGE_WIDTHS.filter((w) => w <= width)
  return fit.length ? [...fit] : [width]
}

/**
 * Makes every size of an image, one at a time (a worker's memory holds one encoded size beside
 * the original), handing each to `store` as it is made. `maxPixels` guards against decompression
 * bombs: a small file that claims a huge canvas is refused before it is decoded.
 */
export async function makeSizes(uploadId: string, original: Buffer, opts: { maxPixels: number }, store: (size: ImageSize, bytes: Buffer) => Promise<void>) {
  const sharp = await loadSharp()
  const input = () => sharp(original, { limitInputPixels: opts.maxPixels })
  let meta: Metadata
  try {
    meta = await input().metadata()
    if (!meta.width || !meta.height) throw new Error('no dimensions')
  } catch (err) {
    throw new UndecodableImage(`the image does not decode: ${(err as Error).message}`)
  }
  // EXIF orientation 5-8 turns the picture a quarter: its displayed width is the stored height.
  const shownWidth = (meta.orientation ?? 1) >= 5 ? meta.height : meta.width
  const sizes: ImageSize[] = []
  for (const width of widthsFor(shownWidth)) {
    for (const format of IMAGE_FORMATS) {
      let out: { data: Buffer; info: OutputInfo }
      try {
        const pipeline = input().rotate().resize({ width, withoutEnlargement: true })
        out = await (format === 'webp' ? pipeline.webp({ quality: 80 }) : pipeline.avif({ quality: 50, effort: 4 })).toBuffer({ resolveWithObject: true })
      } catch (err) {
        throw new UndecodableImage(`the image does not decode: ${(err as Error).message}`)
      }
      const size: ImageSize = {
        width: out.info.width, height: out.info.height, format, key: sizeKey(uploadId, width, format),
        bytes: out.data.length, sha256: createHash('sha256').update(out.data).digest('hex'),
      }
      await store(size, out.data)
      sizes.push(size)
    }
  }
  return sizes
}
