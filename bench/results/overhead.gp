set terminal pngcairo size 900,560
set output 'overhead.png'
set title 'Pool overhead: acquire + release, in-memory connection (aggregate ns per cycle, lower is better)'
set xlabel 'threads'
set ylabel 'ns per cycle'
set logscale xy 2
set key top left
set grid
plot 'overhead.dat' using 1:2 with linespoints lw 2 title 'connpool, pool = threads', \
     '' using 1:3 with linespoints lw 2 title 'connpool, pool = threads/2', \
     '' using 1:4 with linespoints lw 2 dt 2 title 'textbook, pool = threads', \
     '' using 1:5 with linespoints lw 2 dt 2 title 'textbook, pool = threads/2'
