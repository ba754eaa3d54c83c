// MIP2Q lane with exponent window e_min = 1 (the project's default window): the 3-bit field
// f = 0..6 means a shift of e = e_min + f = 1..7, f = 7 encodes a zero weight.
// p = (s ? -1 : +1) * (a << (f + 1)); |p| <= 128 << 7 = 16384, so 16 bits hold it.
// The constant +1 is wired (one bit position), so the shifter still has 3 stages.
module mip2q_lane_e1_7 (
    input  wire signed [7:0]  a,
    input  wire        [3:0]  code,
    output wire signed [15:0] p
);
    wire               s = code[3];
    wire        [2:0]  f = code[2:0];
    wire signed [15:0] ax = {{7{a[7]}}, a, 1'b0};   // a << e_min
    wire signed [15:0] sh = ax << f;                // f = 7 is gated below, never used
    wire signed [15:0] sg = s ? -sh : sh;
    assign p = (f == 3'd7) ? 16'sd0 : sg;
endmodule
