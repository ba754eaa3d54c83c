// MIP2Q low-precision lane: signed 8-bit activation times a signed power of two.
// 4-bit code = {s, e[2:0]}: e = 0..6 is the exponent, e = 7 encodes a zero weight.
// p = (s ? -1 : +1) * (a << e); |p| <= 128 << 6 = 8192, so 16 bits hold it.
// Hardware: a 3-stage barrel shifter (shift 0..6), a conditional two's-complement negate
// and zero gating. Combinational.
module mip2q_lane (
    input  wire signed [7:0]  a,
    input  wire        [3:0]  code,
    output wire signed [15:0] p
);
    wire               s = code[3];
    wire        [2:0]  e = code[2:0];
    wire signed [15:0] ax = {{8{a[7]}}, a};
    wire signed [15:0] sh = ax << e;            // e = 7 is gated below, never used
    wire signed [15:0] sg = s ? -sh : sh;
    assign p = (e == 3'd7) ? 16'sd0 : sg;
endmodule
