set terminal pngcairo size 900,560
set output 'throughput_mysql_unix.png'
set title 'mysql SELECT 1 over unix: throughput against client threads (unpinned, 2 vCPUs)'
set xlabel 'client threads'
set ylabel 'requests per second'
set logscale xy
set datafile missing '?'
set key bottom right
set grid
plot 'throughput_mysql_unix.dat' using 1:2 with linespoints lw 2  title 'connect per request', 'throughput_mysql_unix.dat' using 1:3 with linespoints lw 2  title 'dedicated connection per thread', 'throughput_mysql_unix.dat' using 1:4 with linespoints lw 2  title 'connpool pool 2', 'throughput_mysql_unix.dat' using 1:5 with linespoints lw 2  title 'connpool pool 4', 'throughput_mysql_unix.dat' using 1:7 with linespoints lw 2 dt 2 title 'textbook pool 4'
