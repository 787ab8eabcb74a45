/* The system calls newlib-nano expects underneath stdio, for code that uses it: output goes
 * to the board UART, there is no heap (the firmware never allocates; sections.ld gives every
 * byte of SRAM to the stack, static data and the arena) and no files. Unused stubs are
 * dropped by --gc-sections. */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mp_board.h"

int _close(int fd);
int _fstat(int fd, struct stat *st);
int _getpid(void);
int _isatty(int fd);
int _kill(int pid, int sig);
int _lseek(int fd, int offset, int whence);
int _read(int fd, char *buf, int n);
int _write(int fd, const char *buf, int n);
void *_sbrk(ptrdiff_t increment);
void _exit(int status);

int _close(int fd) {
  (void)fd;
  errno = EBADF;
  return -1;
}

int _fstat(int fd, struct stat *st) {
  (void)fd;
  st->st_mode = S_IFCHR;
  return 0;
}

int _getpid(void) { return 1; }

int _isatty(int fd) { return fd <= 2; }

int _kill(int pid, int sig) {
  (void)pid;
  (void)sig;
  errno = EINVAL;
  return -1;
}

int _lseek(int fd, int offset, int whence) {
  (void)fd;
  (void)offset;
  (void)whence;
  return 0;
}

/* One byte a call, as a terminal read returns what has arrived rather than a full buffer. */
int _read(int fd, char *buf, int n) {
  (void)fd;
  if (n <= 0) {
    return 0;
  }
  buf[0] = (char)board_uart_getc();
  return 1;
}

int _write(int fd, const char *buf, int n) {
  (void)fd;
  board_uart_write(buf, (uint32_t)n);
  return n;
}

void *_sbrk(ptrdiff_t increment) {
  (void)increment;
  errno = ENOMEM;
  return (void *)-1;
}

void _exit(int status) {
  (void)status;
  for (;;) {
  }
}
