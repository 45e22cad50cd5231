/* The one place the version lives; the Makefile's `dist` reads it too. */
#ifndef LG_VERSION_H
#define LG_VERSION_H
#define LG_VERSION "0.1.0-dev"
#endif
