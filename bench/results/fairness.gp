set terminal pngcairo size 900,560
set output 'fairness.png'
set title 'Acquire wait under overload: 32 threads, pool of 4, 50 us busy hold'
set ylabel 'acquire wait (us)'
set logscale y
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
plot 'fairness.dat' using 3:xtic(2) title 'connpool', '' using 4 title 'textbook mutex + condvar'
