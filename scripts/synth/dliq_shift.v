// DLIQ per-block shifter: a signed W-bit (default 12) sub-tree sum shifted left by the block's
// k in 0..5 -> W+5 bits. One instance per block (shared by the block's low lanes), not per lane.
// k = 6, 7 never occur; they are left as don't-cares.
module dliq_shift #(
    parameter W = 12
) (
    input  wire signed [W-1:0] x,
    input  wire        [2:0]   k,
    output reg  signed [W+4:0] y
);
    wire signed [W+4:0] xe = {{5{x[W-1]}}, x};
    always @* begin
        case (k)
            3'd0: y = xe;
            3'd1: y = xe << 1;
            3'd2: y = xe << 2;
            3'd3: y = xe << 3;
            3'd4: y = xe << 4;
            3'd5: y = xe << 5;
            default: y = {(W+5){1'bx}};
        endcase
    end
endmodule
