// connpool-sim: line charts as inline SVG, so that the HTML report needs no script, no
// style sheet and no network.
#ifndef CONNPOOL_TOOLS_SIM_SVG_HPP
#define CONNPOOL_TOOLS_SIM_SVG_HPP

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace connpool::sim::svg {

struct line {
    std::string name;
    std::string color;
    std::vector<std::pair<double, double>> points;
    bool dots = false;
    bool dashed = false;  // drawn over a line it may cover
};

struct mark {
    double at = 0;
    std::string label;
    std::string color;
};

struct chart {
    std::string id, title, x_label, y_label;
    std::vector<line> lines;
    std::vector<mark> vertical;    // x positions
    std::vector<mark> horizontal;  // y positions
    double y_max = 0;              // 0: from the data
};

inline std::string escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '&': o += "&amp;"; break;
        case '"': o += "&quot;"; break;
        default: o += c;
        }
    }
    return o;
}

inline std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v);
    return b;
}

// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
inline double nice_ceil(double v) {
    if (v <= 0) return 1;
    const double p = std::pow(10.0, std::floor(std::log10(v)));
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        if (v <= m * p) return m * p;
    }
    return 10 * p;
}

inline std::string render(const chart& c) {
    const double W = 760, H = 320, L = 64, R = 150, T = 34, B = 46;
    double x0 = INFINITY, x1 = -INFINITY, y1 = 0;
    for (const auto& l : c.lines) {
        for (auto [x, y] : l.points) {
            x0 = std::min(x0, x), x1 = std::max(x1, x), y1 = std::max(y1, y);
        }
    }
    for (const auto& m : c.horizontal) y1 = std::max(y1, m.at);
    if (!(x0 < x1)) x0 = 0, x1 = std::max(1.0, x1 + 1);
    y1 = c.y_max > 0 ? c.y_max : nice_ceil(y1 * 1.05);
    const auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
    const auto py = [&](double y) { return T + (1 - std::min(y, y1) / y1) * (H - T - B); };
    std::ostringstream o;
    o << "<svg id=\"" << escape(c.id) << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" viewBox=\"0 0 " << W << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    o << "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n";
    o << "<text x=\"" << L << "\" y=\"20\" font-size=\"15\" font-weight=\"bold\">" << escape(c.title) << "</text>\n";
    for (int i = 0; i <= 4; ++i) {  // grid and y ticks
        const double y = y1 * i / 4;
        o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(y) << "\" y2=\"" << py(y)
          << "\" stroke=\"#ddd\"/><text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << num(y)
          << "</text>\n";
    }
    // Whole-number ticks when the axis spans enough of them (pool sizes, seconds).
    const bool whole = x1 - x0 >= 2 && std::round(x0) == x0 && std::round(x1) == x1;
    const int ticks = whole ? static_cast<int>(std::min(5.0, x1 - x0)) : 5;
    for (int i = 0; i <= ticks; ++i) {
        const double x = whole ? std::round(x0 + (x1 - x0) * i / ticks) : x0 + (x1 - x0) * i / ticks;
        o << "<text x=\"" << px(x) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << num(std::round(x * 100) / 100)
          << "</text>\n";
    }
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << H - B << "\" y2=\"" << H - B << "\" stroke=\"#333\"/>\n";
    o << "<line x1=\"" << L << "\" x2=\"" << L << "\" y1=\"" << T << "\" y2=\"" << H - B << "\" stroke=\"#333\"/>\n";
    o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << escape(c.x_label) << "</text>\n";
    o << "<text transform=\"translate(14," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
      << escape(c.y_label) << "</text>\n";
    for (const auto& m : c.horizontal) {
        o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << py(m.at) << "\" y2=\"" << py(m.at) << "\" stroke=\""
          << m.color << "\" stroke-dasharray=\"6 4\"/><text x=\"" << W - R - 4 << "\" y=\"" << py(m.at) - 4
          << "\" text-anchor=\"end\" fill=\"" << m.color << "\">" << escape(m.label) << "</text>\n";
    }
    int k = 0;
    for (const auto& m : c.vertical) {
        o << "<line x1=\"" << px(m.at) << "\" x2=\"" << px(m.at) << "\" y1=\"" << T << "\" y2=\"" << H - B
          << "\" stroke=\"" << m.color << "\" stroke-dasharray=\"4 3\"/><text x=\"" << px(m.at) + 4 << "\" y=\""
          << T + 14 + 14 * k++ << "\" fill=\"" << m.color << "\">" << escape(m.label) << "</text>\n";
    }
    int n = 0;
    for (const auto& l : c.lines) {
        o << "<polyline class=\"series\" fill=\"none\" stroke-width=\"2\" stroke=\"" << l.color
          << (l.dashed ? "\" stroke-dasharray=\"7 5" : "") << "\" points=\"";
        for (auto [x, y] : l.points) o << num(px(x)) << ',' << num(py(y)) << ' ';
        o << "\"/>\n";
        if (l.dots) {
            for (auto [x, y] : l.points) o << "<circle cx=\"" << num(px(x)) << "\" cy=\"" << num(py(y)) << "\" r=\"3\" fill=\"" << l.color << "\"/>";
            o << '\n';
        }
        const double ly = T + 10 + 18 * n++;
        o << "<rect x=\"" << W - R + 12 << "\" y=\"" << ly - 8 << "\" width=\"14\" height=\"4\" fill=\"" << l.color
          << "\"/><text x=\"" << W - R + 32 << "\" y=\"" << ly - 2 << "\">" << escape(l.name) << "</text>\n";
    }
    o << "</svg>\n";
    return o.str();
}

}  // namespace connpool::sim::svg

#endif  // CONNPOOL_TOOLS_SIM_SVG_HPP
