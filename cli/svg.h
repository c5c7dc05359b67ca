/* A small SVG writer for `dflow plot`: a document of a fixed size in pixels,
 * with lines, polylines, rectangles, circles and text, written to a FILE as
 * self-contained SVG 1.1 (no scripts, no external references), readable in
 * a browser and by rsvg-convert. Text is XML-escaped; coordinates are in
 * pixels from the top-left. The caller owns the FILE. */
#ifndef DFLOW_CLI_SVG_H
#define DFLOW_CLI_SVG_H

#include <stdio.h>

void svg_begin(FILE *f, int width, int height);
void svg_end(FILE *f);
void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *color, double w);
/* A polyline through n points (xs[i], ys[i]). */
void svg_polyline(FILE *f, const double *xs, const double *ys, int n, const char *color, double w);
void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill,
              const char *stroke);
void svg_circle(FILE *f, double x, double y, double r, const char *fill);
/* A filled polygon through n points, fill-opacity op (a band). */
void svg_polygon(FILE *f, const double *xs, const double *ys, int n, const char *fill, double op);
/* A group whose shapes are drawn without anti-aliased seams (heat-map cells). */
void svg_crisp_begin(FILE *f);
void svg_group_end(FILE *f);
/* anchor: "start", "middle" or "end"; rotate: degrees about (x, y). */
void svg_text(FILE *f, double x, double y, const char *text, double size, const char *anchor,
              double rotate);

#endif
