/* The SVG writer (svg.h). Numbers are written with two decimals: pixels. */
#include "svg.h"

static void escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

void svg_begin(FILE *f, int width, int height) {
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, sans-serif\">\n"
            "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            width, height, width, height, width, height);
}

void svg_end(FILE *f) {
    fputs("</svg>\n", f);
}

void svg_line(FILE *f, double x1, double y1, double x2, double y2, const char *color, double w) {
    fprintf(f,
            "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
            "stroke-width=\"%.2f\"/>\n",
            x1, y1, x2, y2, color, w);
}

void svg_polyline(FILE *f, const double *xs, const double *ys, int n, const char *color, double w) {
    fputs("<polyline fill=\"none\" stroke-linejoin=\"round\" points=\"", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.2f,%.2f", i ? " " : "", xs[i], ys[i]);
    fprintf(f, "\" stroke=\"%s\" stroke-width=\"%.2f\"/>\n", color, w);
}

void svg_polygon(FILE *f, const double *xs, const double *ys, int n, const char *fill, double op) {
    fputs("<polygon points=\"", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.2f,%.2f", i ? " " : "", xs[i], ys[i]);
    fprintf(f, "\" fill=\"%s\" fill-opacity=\"%.2f\" stroke=\"none\"/>\n", fill, op);
}

void svg_rect(FILE *f, double x, double y, double w, double h, const char *fill,
              const char *stroke) {
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"", x, y, w, h,
            fill);
    if (stroke) fprintf(f, " stroke=\"%s\" stroke-width=\"1\"", stroke);
    fputs("/>\n", f);
}

void svg_crisp_begin(FILE *f) {
    fputs("<g shape-rendering=\"crispEdges\">\n", f);
}

void svg_group_end(FILE *f) {
    fputs("</g>\n", f);
}

void svg_circle(FILE *f, double x, double y, double r, const char *fill) {
    fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"%s\"/>\n", x, y, r, fill);
}

void svg_text(FILE *f, double x, double y, const char *text, double size, const char *anchor,
              double rotate) {
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.1f\" text-anchor=\"%s\"", x, y, size,
            anchor);
    if (rotate != 0) fprintf(f, " transform=\"rotate(%.1f %.2f %.2f)\"", rotate, x, y);
    fputc('>', f);
    escaped(f, text);
    fputs("</text>\n", f);
}
