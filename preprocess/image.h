/* image.h — decode an image file to 8-bit RGB.
 *
 * JPEG goes through libjpeg-turbo, PNG through libpng, everything else (WebP, BMP, GIF first frame,
 * TIFF, 12-bit JPEG, ...) through FFmpeg's image decoders (libavformat probing + libavcodec).
 *
 * What comes out matches what HF transformers' `load_image` + the processors' RGB conversion give
 * from Pillow, so the tensors fed to a model are the reference ones:
 *  - JPEG: libjpeg-turbo with its defaults (islow IDCT, fancy upsampling), as Pillow uses it, so the
 *    pixels are bit-identical to Pillow's. Grayscale is replicated to RGB. CMYK/YCCK is converted with
 *    Pillow's formula (R = 255-K - (C·(255-K))/255, rounded as Pillow does), the channels read as
 *    Adobe-inverted as Pillow always assumes (Photoshop's convention, the common case).
 *    12-bit JPEG (SOF1, precision 12): libjpeg-turbo's 8-bit API cannot decode it, so it goes to
 *    FFmpeg's mjpeg decoder and is reduced to 8 bits by libswscale.
 *  - EXIF orientation (JPEG APP1, PNG eXIf) is applied like PIL.ImageOps.exif_transpose, unless
 *    opts->ignore_orientation.
 *  - PNG: palette and low-bit-depth gray expanded, tRNS turned into alpha, 16-bit reduced to the high
 *    byte (Pillow does the same for RGB/RGBA; for 16-bit *grayscale* Pillow's "I" -> "RGB" conversion
 *    clips to 255, which is a Pillow defect we do not copy), Adam7 interlacing, no gamma applied
 *    (Pillow applies none). libpng warnings (e.g. "iCCP: known incorrect sRGB profile") are not errors.
 *  - Alpha: composited over white by default (MP_ALPHA_WHITE) with Pillow's Image.alpha_composite
 *    arithmetic: this is Idefics3ImageProcessor's convert_to_rgb (and qwen-vl-utils' to_rgb). With
 *    MP_ALPHA_DROP the alpha channel is discarded, as PIL's Image.convert("RGB") does (what
 *    transformers' generic convert_to_rgb and load_image do).
 *  - Truncated JPEG (libjpeg "Premature end of JPEG file"): libjpeg-turbo fills the missing part with
 *    gray. By default the image is returned and img->warning says what happened; with opts->strict the
 *    load fails instead. Every other libjpeg/libpng error fails the load.
 *  - Errors: one line naming the file and the problem ("x.png: PNG: IHDR: CRC error"). Never a crash.
 */
#ifndef MP_PREPROCESS_IMAGE_H
#define MP_PREPROCESS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/mp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An 8-bit RGB image, rows top to bottom, w*3 bytes per row, no padding. */
typedef struct mp_image {
    int w, h;
    uint8_t *data;     /* w*h*3 bytes, owned (free with mp_image_free) */
    char format[16];   /* decoder that produced it: "jpeg", "png", "webp", "bmp", ... */
    int orientation;   /* EXIF orientation found in the file (1..8; 0 = none), already applied */
    int had_alpha;     /* the file had an alpha channel or tRNS (now composited or dropped) */
    char warning[256]; /* non-empty when the file was damaged but an image was still produced */
} mp_image;

enum { MP_ALPHA_WHITE = 0, MP_ALPHA_DROP = 1 };

typedef struct mp_image_load_opts {
    int alpha;              /* MP_ALPHA_WHITE (default) or MP_ALPHA_DROP */
    int strict;             /* 1: a truncated/damaged JPEG that libjpeg only warns about is an error */
    int ignore_orientation; /* 1: do not apply the EXIF orientation */
    int64_t max_pixels;     /* refuse larger images (0 = default 2^28 pixels) */
} mp_image_load_opts;

mp_image_load_opts mp_image_load_default_opts(void);

/* Decode a file. opts may be NULL (defaults). On failure img is left empty and err says why. */
int mp_image_load(const char *path, const mp_image_load_opts *opts, mp_image *img, mp_error *err);
/* Decode from memory; `name` is used in messages only (may be NULL). */
int mp_image_load_mem(const void *buf, size_t size, const char *name, const mp_image_load_opts *opts,
                      mp_image *img, mp_error *err);
void mp_image_free(mp_image *img);

/* Allocate an uninitialised w x h RGB image. */
int mp_image_alloc(mp_image *img, int w, int h, mp_error *err);

/* Apply an EXIF orientation (1..8) in place, as PIL.ImageOps.exif_transpose. */
int mp_image_apply_orientation(mp_image *img, int orientation, mp_error *err);

/* Parse the orientation tag (0x0112) from a TIFF-structured EXIF block (starting at the "II"/"MM" byte
 * order mark; a leading "Exif\0\0" is skipped). Returns 1..8, or 0 when absent or malformed. */
int mp_exif_orientation(const uint8_t *p, size_t n);

/* Composite an RGBA row set over an opaque background colour with Pillow's alpha_composite rounding,
 * or drop the alpha (mode MP_ALPHA_DROP). rgba has n pixels; rgb receives n pixels. */
void mp_rgba_to_rgb(uint8_t *rgb, const uint8_t *rgba, size_t n, int mode);

/* Convert a decoded libavutil AVFrame (struct AVFrame *) to RGB honouring its colour range/matrix;
 * shared with preprocess/video.c. Alpha (if the pixel format has it) is handled per `alpha_mode`.
 * Sets *had_alpha when the pixel format carries alpha (may be NULL). */
int mp_image_from_avframe(const void *avframe, int alpha_mode, mp_image *img, int *had_alpha,
                          const char *name, mp_error *err);

/* FFmpeg's log: on first use the library routes av_log to a capture (nothing printed; the last warning
 * or error line of the calling thread is kept for error messages) unless MMPIPE_FFMPEG_LOG is set in
 * the environment, which leaves FFmpeg's own printing on. */
void mp_av_init(void);
const char *mp_av_last_message(void); /* "" when none since mp_av_clear_message() */
void mp_av_clear_message(void);

#ifdef __cplusplus
}
#endif
#endif
