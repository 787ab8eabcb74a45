/* CRC-32 (polynomial 0xEDB88320 reflected, as zlib.crc32), bitwise: plans are checked once
 * per load and inputs once per upload, so a 1 KB table in flash is not worth it. */
#include "mp_runtime.h"

uint32_t mp_crc32(uint32_t crc, const uint8_t *data, uint32_t n) {
  crc = ~crc;
  for (uint32_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}
